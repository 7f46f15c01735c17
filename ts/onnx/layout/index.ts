/**
 * The NCHWc layout pass: at load, after fusion, a second plan of the graph that keeps activations
 * in the channel-blocked layout NCHWc ([N, ceil(C/16), H, W, 16], ops/conv-nchwc.ts) between
 * convolutions, as onnxruntime's NchwcTransformer does: a reorder before the first blocked
 * convolution, blocked convolutions (Conv and the fused Conv+BatchNormalization+Add+activation
 * nodes with groups 1 and >= 16 input channels; ConvConcat when every set's output channels are
 * whole blocks), MaxPool (2-D), AveragePool (2-D, no dilation), GlobalAveragePool, Relu, Add of
 * two blocked values and inference's Dropout kept blocked, and a reorder back wherever any other
 * op reads a blocked value (once per value) and for graph outputs, which are always plain. A
 * convolution of fewer than 16 input channels on a plain value (an image model's first, on 3
 * colours) reads it plain and writes NCHWc (conv2dNchwc's plain input: only the real channels
 * are multiplied), when a blocked node reads its output: the stem's MaxPool then runs blocked
 * and no reorder sits between them, as onnxruntime's NchwcTransformer does. The pools run as a vector loop
 * over each pixel's 16 channels (avgPool2dNchwc), so the reorder moves to their small output (a
 * first GlobalAveragePool as a mean over the blocked tensor's H and W axes cost 4x the reorder).
 *
 * OnnxModel.run picks the plan per run (`nchwcApplies`): the blocked one only where it pays
 * (the native backend on an AVX-512 CPU), in inference (not training mode, and no gradient
 * recorded for a parameter or input), unless KILN_ONNX_NCHWC=off. Otherwise the fused graph runs
 * exactly as without the pass.
 */

import { backend } from '../../engine.js';
import type { Tensor } from '../../tensor.js';
import type { OnnxNode } from '../node.js';
import { ConvFusedNode } from '../fusion/conv.js';
import { ConvConcatNode } from '../fusion/conv-concat.js';
import { NCHWC_BLOCK } from '../../ops/conv-nchwc.js';
import { BlockedAvgPoolNode, BlockedConcatNode, BlockedConvNode, BlockedElementwiseNode, BlockedMaxPoolNode, LayoutNode, ReorderNode } from './nodes.js';

export { LayoutNode } from './nodes.js';

/** The blocked plan: the nodes to run, and those of them that run blocked. */
export interface NchwcPlan {
  nodes: OnnxNode[];
  blocked: LayoutNode[];
}

/** Convolutions with fewer input channels read their input plain (an image's 3 colours: blocked, 13 of 16 lanes would be padding). */
const MIN_CHANNELS = NCHWC_BLOCK;

/** How a node runs in the blocked plan: which inputs it reads blocked, and its output's channels when blocked. */
interface Decision {
  make: () => LayoutNode;
  blockedInputs: number[];
  outChannels: number | undefined;
  /** A convolution reading its input plain and writing NCHWc (a stem): kept only if a blocked node reads its output. */
  plainInput?: boolean;
}

/**
 * The blocked plan of `nodes` (fused, in graph order), or undefined when no convolution would run
 * blocked. `weightShape` gives the shape of an initializer or a constant folded at load (a
 * convolution whose weight is neither stays plain: its channel counts are the blocked values').
 */
export function planNchwc(nodes: OnnxNode[], graphOutputs: string[], weightShape: (name: string) => readonly number[] | undefined): NchwcPlan | undefined {
  const channels = new Map<string, number>(); // blocked values -> their channel count
  const decisions = new Map<OnnxNode, Decision>();
  const read = new Set([...nodes.flatMap((n) => n.inputs), ...graphOutputs]);
  for (const node of nodes) {
    const decision = decide(node, channels, weightShape, read);
    if (decision === undefined) continue;
    decisions.set(node, decision);
    if (decision.outChannels !== undefined) channels.set(node.outputs[0], decision.outChannels);
  }
  // A plain-input convolution whose output no blocked node reads would only add a reorder back.
  const readBlocked = new Set([...decisions].flatMap(([node, d]) => d.blockedInputs.map((i) => node.inputs[i])));
  for (const [node, decision] of decisions) {
    if (decision.plainInput && !readBlocked.has(node.outputs[0])) {
      decisions.delete(node);
      channels.delete(node.outputs[0]);
    }
  }
  if (![...decisions.values()].some((d) => d.outChannels !== undefined)) return undefined;

  // Blocked values some node reads plain, or that are graph outputs: converted back once, right
  // after they are produced.
  const readPlain = new Set(graphOutputs.filter((v) => channels.has(v)));
  for (const node of nodes) {
    const blockedInputs = decisions.get(node)?.blockedInputs ?? [];
    node.inputs.forEach((v, i) => {
      if (channels.has(v) && !blockedInputs.includes(i)) readPlain.add(v);
    });
  }

  const planned: OnnxNode[] = [];
  const blocked: LayoutNode[] = [];
  const reordered = new Set<string>();
  for (const node of nodes) {
    const decision = decisions.get(node);
    if (decision === undefined) {
      planned.push(node);
      continue;
    }
    for (const i of decision.blockedInputs) {
      const value = node.inputs[i];
      if (channels.has(value) || reordered.has(value)) continue;
      planned.push(new ReorderNode('ToNchwc', value, 0, node.opset));
      reordered.add(value);
    }
    const layoutNode = decision.make();
    planned.push(layoutNode);
    blocked.push(layoutNode);
    const out = node.outputs[0];
    if (decision.outChannels !== undefined && readPlain.has(out)) planned.push(new ReorderNode('FromNchwc', out, decision.outChannels, node.opset));
  }
  return { nodes: planned, blocked };
}

/** How `node` runs blocked, given the channel counts of the blocked values before it; undefined: plain. */
function decide(node: OnnxNode, channels: Map<string, number>, weightShape: (name: string) => readonly number[] | undefined, read: Set<string>): Decision | undefined {
  const convShape = (conv: OnnxNode, fewest = MIN_CHANNELS): readonly number[] | undefined => {
    const shape = weightShape(conv.inputs[1] ?? '');
    return shape?.length === 4 && conv.int('group', 1) === 1 && shape[1] >= fewest ? shape : undefined;
  };
  if (node instanceof ConvFusedNode || node.opType === 'Conv') {
    const conv = node instanceof ConvFusedNode ? node.conv : node;
    const stem = convShape(conv, 1);
    const residual = node instanceof ConvFusedNode && node.hasResidual;
    if (stem !== undefined && stem[1] < MIN_CHANNELS && !channels.has(node.inputs[0]) && !residual && node.outputs.length === 1) {
      const [out, c] = stem;
      return { make: () => new BlockedConvNode(node, c, out, true), blockedInputs: [], outChannels: out, plainInput: true };
    }
    const shape = convShape(conv);
    if (shape === undefined || node.outputs.length !== 1) return undefined;
    const [out, c] = shape;
    // A residual addend read blocked must be the output's channels (a broadcast Add runs plain).
    const addend = residual ? node.inputs[3] : undefined;
    if (addend !== undefined && channels.has(addend) && channels.get(addend) !== out) return undefined;
    return { make: () => new BlockedConvNode(node, c, out), blockedInputs: residual ? [0, 3] : [0], outChannels: out };
  }
  if (node instanceof ConvConcatNode) {
    const shapes = node.sets.map((s) => convShape(s.conv));
    if (shapes.some((s) => s === undefined || s[0] % NCHWC_BLOCK !== 0 || s[1] !== shapes[0]![1])) return undefined;
    const out = shapes.reduce((sum, s) => sum + s![0], 0);
    return { make: () => new BlockedConcatNode(node, shapes[0]![1], out), blockedInputs: [0], outChannels: out };
  }
  const inputChannels = node.inputs.map((v) => channels.get(v));
  // Dropout only runs in this plan in inference, where it is the identity (its mask read by no one).
  const identity = node.opType === 'Dropout' && node.outputs.slice(1).every((o) => o === '' || !read.has(o));
  if ((node.opType === 'Relu' || identity) && node.outputs.length >= 1 && inputChannels[0] !== undefined) {
    return { make: () => new BlockedElementwiseNode(node, new Map([[0, inputChannels[0]!]]), inputChannels[0]), blockedInputs: [0], outChannels: inputChannels[0] };
  }
  if (['Add', 'Sum'].includes(node.opType) && node.inputs.length === 2 && node.outputs.length === 1 && inputChannels[0] !== undefined && inputChannels[0] === inputChannels[1]) {
    const c = inputChannels[0];
    return { make: () => new BlockedElementwiseNode(node, new Map([[0, c], [1, c]]), c), blockedInputs: [0, 1], outChannels: c };
  }
  if (node.opType === 'MaxPool' && (node.outputs[1] ?? '') === '' && node.ints('kernel_shape')?.length === 2 && inputChannels[0] !== undefined) {
    const c = inputChannels[0];
    return { make: () => new BlockedMaxPoolNode(node, new Map([[0, c]]), c), blockedInputs: [0], outChannels: c };
  }
  const average = (node.opType === 'AveragePool' && node.ints('kernel_shape')?.length === 2) || node.opType === 'GlobalAveragePool';
  if (average && node.outputs.length === 1 && inputChannels[0] !== undefined) {
    const c = inputChannels[0];
    return { make: () => new BlockedAvgPoolNode(node, new Map([[0, c]]), c), blockedInputs: [0], outChannels: c };
  }
  return undefined;
}

/** The environment's KILN_ONNX_NCHWC (Node; undefined in a browser). */
function knob(): string | undefined {
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.KILN_ONNX_NCHWC;
}

/**
 * Whether this run takes the blocked plan: the native backend on an AVX-512 CPU (where the
 * blocked kernels pay), in inference (not `training`, and, when `gradients` are recorded, none
 * recorded for any of `tensors`: the parameters and inputs), and KILN_ONNX_NCHWC is not 'off'.
 */
export function nchwcApplies(training: boolean, gradients: boolean, tensors: () => Iterable<Tensor>): boolean {
  if (training || knob() === 'off') return false;
  const be = backend();
  if (be.name !== 'native' || be.impl.simdLevel() !== 'avx512') return false;
  if (!gradients) return true;
  for (const t of tensors()) if (t.requiresGrad) return false;
  return true;
}
