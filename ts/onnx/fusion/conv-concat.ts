/**
 * Concat on channels of convolutions of one input, each Conv alone or followed by an activation
 * (SqueezeNet's fire modules: Concat(Relu(Conv1x1(s)), Relu(Conv3x3(s)), axis 1); Inception's
 * branches that are single convolutions), run as one Kiln conv2dConcat: each convolution's kernel
 * writes its output straight into its channel slice of the result, so the Concat is no pass of
 * its own (SqueezeNet batch 8: 4.6 ms of CPU in its 8 Concats otherwise). Matched before conv.ts's
 * Conv + activation fusion, which would otherwise take the convolutions one by one. A Conv
 * followed by BatchNormalization or a residual Add is left to conv.ts.
 */

import { conv2dConcat, type Conv2dFilterSet, type ConvActivation } from '../../ops/conv.js';
import type { Tensor } from '../../tensor.js';
import { constantsIn, type Inputs, type OnnxNode, type RunContext } from '../node.js';
import { conv2dGeometry } from '../ops/conv.js';
import { CONV_ACTIVATIONS, conv2dOutputShape } from './conv.js';
import { FusedNode } from './fused-node.js';
import type { GraphIndex } from './graph.js';

/** One input of the Concat: the Conv producing it and the activation after it, if any. */
interface Branch {
  conv: OnnxNode;
  act: OnnxNode | undefined;
}

/** The Conv (and activation) producing `value`, read by the Concat alone. */
function branchOf(value: string, graph: GraphIndex): Branch | undefined {
  for (const opType of Object.keys(CONV_ACTIVATIONS)) {
    const act = graph.privateProducer(value, opType);
    if (act === undefined) continue;
    const conv = graph.privateProducer(act.inputs[0], 'Conv');
    return conv === undefined ? undefined : { conv, act };
  }
  const conv = graph.privateProducer(value, 'Conv');
  return conv === undefined ? undefined : { conv, act: undefined };
}

/** Matches Concat(axis 1) whose every input is a Conv (-> activation) of one shared input. */
export function fuseConvConcat(concat: OnnxNode, graph: GraphIndex): FusedNode | undefined {
  if (concat.opType !== 'Concat' || concat.outputs.length !== 1 || concat.inputs.length < 2 || concat.int('axis', 0) !== 1) return undefined;
  const branches: Branch[] = [];
  for (const value of concat.inputs) {
    const branch = value === '' ? undefined : branchOf(value, graph);
    if (branch === undefined || branch.conv.outputs.length !== 1) return undefined;
    branches.push(branch);
  }
  const shared = branches[0].conv.inputs[0];
  if (shared === '' || branches.some((b) => b.conv.inputs[0] !== shared)) return undefined;
  const replaced = graph.inOrder([...branches.flatMap((b) => (b.act === undefined ? [b.conv] : [b.conv, b.act])), concat]);
  const inputs = [shared, ...branches.flatMap((b) => [b.conv.inputs[1], b.conv.inputs[2] ?? ''])];
  const sets = branches.map(({ conv, act }) => ({ conv, ...(act === undefined ? { activation: null, alpha: 0 } : CONV_ACTIVATIONS[act.opType](act)) }));
  return new ConvConcatNode(replaced, inputs, concat.outputs[0], sets);
}

/** One convolution of a ConvConcat: its Conv node (geometry) and fused activation. */
export interface ConcatBranch {
  conv: OnnxNode;
  activation: ConvActivation | null;
  alpha: number;
}

/**
 * The fused node; inputs: the shared x, then each set's weight and bias ('' if none). The NCHWc
 * layout pass (onnx/layout/) runs the same sets blocked from `sets`.
 */
export class ConvConcatNode extends FusedNode {
  constructor(
    replaced: OnnxNode[],
    inputs: string[],
    output: string,
    readonly sets: ConcatBranch[],
  ) {
    super('ConvConcat', replaced, inputs, output, (args: Inputs, context: RunContext) => {
      const x = args[0];
      // The filter sets are kept in the prepared call: made from constants only.
      if (x === undefined || x.rank !== 4 || x.dtype !== 'float32' || !constantsIn(context, args.slice(1))) return undefined;
      const resolved = filterSets(x, args, sets);
      return resolved === undefined ? undefined : (a) => [conv2dConcat(a[0]!, resolved)];
    });
  }
}

/**
 * Each set's conv2d options for input `x` (only its dims 2, 3 are read) from the fused node's
 * args, or undefined when a weight or bias is not float32 or the sets' output sizes differ
 * (the original nodes then run, and Concat reports a mismatch).
 */
export function filterSets(x: Pick<Tensor, 'rank' | 'shape'>, args: Inputs, sets: ConcatBranch[]): Conv2dFilterSet[] | undefined {
  const resolved: Conv2dFilterSet[] = [];
  for (const [i, { conv, activation, alpha }] of sets.entries()) {
    const [w, bias] = [args[1 + 2 * i], args[2 + 2 * i]];
    if (w === undefined || w.rank !== 4 || w.dtype !== 'float32' || (bias !== undefined && bias.dtype !== 'float32')) return undefined;
    resolved.push({ ...conv2dGeometry(x, w, conv), weight: w, bias: bias ?? null, activation, alpha });
  }
  return sameOutputSize(x, resolved) ? resolved : undefined;
}

/** Whether every set gives the same output height and width (else the original nodes run, and Concat reports the mismatch). */
function sameOutputSize(x: Pick<Tensor, 'rank' | 'shape'>, sets: Conv2dFilterSet[]): boolean {
  const sizes = sets.map((s) => conv2dOutputShape(x, s.weight, s).slice(2).join('x'));
  return sizes.every((s) => s === sizes[0]);
}
