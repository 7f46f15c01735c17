/**
 * Scaled dot-product attention as exporters write it, run on Kiln's fused attention kernel:
 *
 *   Y = MatMul(Softmax(Add?(Mul|Div(MatMul(Q, Transpose?(K)), scale), mask)), V)
 *
 * (kiln.onnx.save and BERT-style exports write it so). The fused kernel computes it block by
 * block with an online softmax, without the [Tq, Tk] score and weight tensors the five nodes
 * store. Q, K, V: [B, H, T, D] or [B·H, T, D]; the mask may vary over the batch and the key only
 * ([B, 1, 1, Tk], as padding masks are) or be a constant causal mask ([Tq, Tk]); anything else
 * (other per-query masks, broadcast heads) runs the original nodes.
 */

import { attentionFor } from '../../ops/prepared.js';
import { tidy } from '../../engine.js';
import { detach } from '../../autograd.js';
import { expand, reshape, squeeze, transpose, unsqueeze } from '../../ops/shape.js';
import type { Tensor } from '../../tensor.js';
import { constantsIn, type Inputs, type OnnxNode, type RunContext } from '../node.js';
import { FusedNode } from './fused-node.js';
import type { GraphIndex } from './graph.js';
import { scalarValue } from './scalars.js';

/** Whether `perm` swaps the last two axes and keeps the others. */
function swapsLastTwo(perm: number[] | undefined): boolean {
  if (perm === undefined || perm.length < 2) return false;
  const r = perm.length;
  return perm.every((p, i) => (i < r - 2 ? p === i : i === r - 2 ? p === r - 1 : p === r - 2));
}

/** Additive values at or below this mask a key as -Infinity would (exp underflows to 0 either way). */
const MASKED = -1e9;

/** Whether `values` ([tq, tk], row-major) is a causal mask aligned bottom-right: 0 where j <= i + tk - tq, masked elsewhere. */
function isCausal(values: Float32Array, tq: number, tk: number): boolean {
  for (let i = 0; i < tq; i++) {
    for (let j = 0; j < tk; j++) {
      const v = values[i * tk + j];
      if (j <= i + tk - tq ? v !== 0 : !(v <= MASKED)) return false;
    }
  }
  return true;
}

/**
 * The mask as the kernel's options: a key mask ([B, Tk], made at each call from a mask that varies
 * over batch and key only) or `causal` (a constant [Tq, Tk] causal mask, as decoders export it,
 * read when prepared: a model constant while a compiled run is recorded); undefined for any other
 * mask.
 */
function maskOptions(mask: Tensor, rank: number, batch: number, tq: number, tk: number, context: RunContext): { keyPaddingMask?: (mask: Tensor) => Tensor; causal?: boolean } | undefined {
  if (mask.dtype !== 'float32' || mask.rank > rank) return undefined;
  const dims = [...Array(rank - mask.rank).fill(1), ...mask.shape];
  const [b, rows, last] = [dims[0], dims[rank - 2], dims[rank - 1]];
  if (dims.slice(1, rank - 2).some((d) => d !== 1) || (b !== 1 && b !== batch) || (last !== 1 && last !== tk)) return undefined;
  if (rows === 1) {
    // Exporters build the mask from float initializers (Where(pad, -1e9, 0)), which Kiln makes
    // parameters; the kernel takes no gradient for it, and in evaluation mode none is wanted.
    return { keyPaddingMask: (m) => expand(reshape(detach(m), [b, last]), [batch, tk]) };
  }
  // A query that sees no key gets the mean of the values from the graph but 0 from the kernel:
  // only masks where every query sees a key (tk >= tq) are taken.
  if (b !== 1 || rows !== tq || last !== tk || tk < tq || !constantsIn(context, [mask])) return undefined;
  return isCausal(mask.dataSync() as Float32Array, tq, tk) ? { causal: true } : undefined;
}

/** Matches the pattern ending at `node` (the MatMul with V). */
export function fuseAttention(node: OnnxNode, graph: GraphIndex): FusedNode | undefined {
  if (node.opType !== 'MatMul') return undefined;
  const softmax = graph.privateProducer(node.inputs[0], 'Softmax');
  if (softmax === undefined) return undefined;
  const add = graph.privateProducer(softmax.inputs[0], 'Add');
  let scaledName = softmax.inputs[0];
  let maskName: string | undefined;
  if (add !== undefined) {
    // Either operand may be the mask; the scores are the one a Mul or Div produced.
    const side = [0, 1].find((i) => graph.privateProducer(add.inputs[i], 'Mul') ?? graph.privateProducer(add.inputs[i], 'Div'));
    if (side === undefined) return undefined;
    [scaledName, maskName] = [add.inputs[side], add.inputs[1 - side]];
  }
  const scaled = graph.privateProducer(scaledName, 'Mul') ?? graph.privateProducer(scaledName, 'Div');
  if (scaled === undefined) return undefined;
  const scoreSide = scaled.opType === 'Div' ? 0 : [0, 1].find((i) => graph.privateProducer(scaled.inputs[i], 'MatMul'));
  if (scoreSide === undefined) return undefined;
  const scores = graph.privateProducer(scaled.inputs[scoreSide], 'MatMul');
  if (scores === undefined) return undefined;
  const scaleName = scaled.inputs[1 - scoreSide];
  const kTransposed = graph.privateProducer(scores.inputs[1], 'Transpose');
  const keys = kTransposed !== undefined && swapsLastTwo(kTransposed.ints('perm')) ? kTransposed : undefined;

  const divide = scaled.opType === 'Div';
  const softmaxAxis = softmax.int('axis', softmax.opset >= 13 ? -1 : 1);
  const replaced = [keys, scores, scaled, add, softmax, node].filter((n): n is OnnxNode => n !== undefined);
  const inputs = [scores.inputs[0], keys?.inputs[0] ?? scores.inputs[1], node.inputs[1], scaleName, ...(maskName === undefined ? [] : [maskName])];
  return new FusedNode('Attention', replaced, inputs, node.outputs[0], (args: Inputs, context: RunContext) => {
    const [q, kIn, v, scaleTensor, mask] = args as Array<Tensor | undefined>;
    if (q === undefined || kIn === undefined || v === undefined || scaleTensor === undefined || !constantsIn(context, [scaleTensor])) return undefined;
    const rank = q.rank;
    if ((rank !== 3 && rank !== 4) || kIn.rank !== rank || v.rank !== rank) return undefined;
    if (q.dtype !== 'float32' || kIn.dtype !== 'float32' || v.dtype !== 'float32') return undefined;
    if (softmaxAxis !== -1 && softmaxAxis !== rank - 1) return undefined;
    // K as the kernel takes it, [..., Tk, D]: the graph's Transpose's input, or a swap of its MatMul operand.
    const swap = [...Array(rank - 2).keys(), rank - 1, rank - 2];
    const kShape = keys === undefined ? swap.map((p) => kIn.shape[p]) : kIn.shape;
    // Same batch (and head) dims on all three: the kernel does not broadcast them.
    const lead = q.shape.slice(0, rank - 2).join();
    if (kShape.slice(0, rank - 2).join() !== lead || v.shape.slice(0, rank - 2).join() !== lead) return undefined;
    const d = q.shape[rank - 1];
    const tk = kShape[rank - 2];
    if (kShape[rank - 1] !== d || v.shape[rank - 2] !== tk) return undefined;
    const factor = scaleTensor.rank <= rank ? scalarValue(scaleTensor) : undefined;
    if (factor === undefined || !Number.isFinite(factor) || factor === 0) return undefined;
    const scale = divide ? 1 / factor : factor;
    const batch = q.shape[0];
    const masking = mask === undefined ? {} : maskOptions(mask, rank, batch, q.shape[rank - 2], tk, context);
    if (masking === undefined) return undefined;
    const attend = attentionFor({ scale, causal: masking.causal });
    if (rank === 4 && keys !== undefined && masking.keyPaddingMask === undefined) return (a) => [attend(a[0]!, a[1]!, a[2]!)];
    // [B·H, T, D] runs as B·H batches of one head; the views made on the way are freed with the scope.
    const as4d = (t: Tensor): Tensor => (rank === 3 ? unsqueeze(t, 1) : t);
    return (a) =>
      tidy(() => {
        const k = keys === undefined ? transpose(a[1]!, swap) : a[1]!;
        const y = attend(as4d(a[0]!), as4d(k), as4d(a[2]!), masking.keyPaddingMask?.(a[4]!));
        return [rank === 3 ? squeeze(y, 1) : y];
      });
  });
}
