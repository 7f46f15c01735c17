/**
 * LayerNorm as exporters spell it before opset 17's LayerNormalization, run as Kiln's one
 * layerNorm kernel instead of ten nodes, each a pass over the whole tensor (the Transformer bench's
 * 8 LayerNorms were 96 of its 297 nodes):
 *
 *   kiln.onnx.save:    Add(Mul(Mul(Sub(x, ReduceMean(x)), Reciprocal(Sqrt(Add(ReduceMean(Mul(c, c)), eps)))), w), b)
 *                      with c = Sub(x, ReduceMean(x)) computed a second time;
 *   torch.onnx.export: Add(Mul(Div(c, Sqrt(Add(ReduceMean(Pow(c, 2)), eps))), w), b), c = Sub(x, ReduceMean(x)).
 *
 * The scale and shift are optional. At run time the fast path checks that the three ReduceMeans
 * reduce the same trailing axes with keepdims, that eps is a scalar (and Pow's exponent 2), and
 * that w and b have the normalized shape; anything else runs the original nodes.
 */

import { layerNormFor } from '../../ops/prepared.js';
import type { Tensor } from '../../tensor.js';
import { constantsIn, type Inputs, type OnnxNode, type RunContext } from '../node.js';
import { MEAN_AXES_INPUT_SINCE, reductionAxes } from '../ops/reduce.js';
import { FusedNode } from './fused-node.js';
import { otherOperand as other, type GraphIndex } from './graph.js';
import { isScalar, scalarValue } from './scalars.js';

/** Sub(x, ReduceMean(x)) producing `value`: [sub, mean], or undefined. */
function centred(value: string, graph: GraphIndex): [OnnxNode, OnnxNode] | undefined {
  const sub = graph.producer(value, 'Sub');
  const mean = sub && graph.producer(sub.inputs[1], 'ReduceMean');
  return mean !== undefined && mean.inputs[0] === sub!.inputs[0] ? [sub!, mean] : undefined;
}

/** Matches the pattern around `sqrt` (the Sqrt of the variance plus eps). */
export function fuseLayerNorm(sqrt: OnnxNode, graph: GraphIndex): FusedNode | undefined {
  if (sqrt.opType !== 'Sqrt') return undefined;
  const plusEps = graph.producer(sqrt.inputs[0], 'Add');
  const varianceSide = plusEps && [0, 1].find((i) => graph.producer(plusEps.inputs[i], 'ReduceMean'));
  if (plusEps === undefined || varianceSide === undefined) return undefined;
  const variance = graph.producer(plusEps.inputs[varianceSide], 'ReduceMean')!;
  const square = graph.producer(variance.inputs[0], 'Mul') ?? graph.producer(variance.inputs[0], 'Pow');
  if (square === undefined || (square.opType === 'Mul' && square.inputs[0] !== square.inputs[1])) return undefined;
  const second = centred(square.inputs[0], graph);
  // The normalization: Mul(c, Reciprocal(sqrt)) or Div(c, sqrt).
  const reciprocal = graph.soleReader(sqrt.outputs[0], 'Reciprocal');
  const scaled = reciprocal ? graph.soleReader(reciprocal.outputs[0], 'Mul') : graph.soleReader(sqrt.outputs[0], 'Div');
  const centredName = scaled === undefined ? undefined : reciprocal ? other(scaled, reciprocal.outputs[0]) : scaled.inputs[1] === sqrt.outputs[0] ? scaled.inputs[0] : undefined;
  const first = centredName === undefined ? undefined : centred(centredName, graph);
  if (second === undefined || first === undefined || first[0].inputs[0] !== second[0].inputs[0]) return undefined;
  const x = first[0].inputs[0];
  const weighted = graph.soleReader(scaled!.outputs[0], 'Mul');
  const weightName = weighted && other(weighted, scaled!.outputs[0]);
  const shifted = graph.soleReader((weighted ?? scaled!).outputs[0], 'Add');
  const biasName = shifted && other(shifted, (weighted ?? scaled!).outputs[0]);
  const last = shifted ?? weighted ?? scaled!;
  const means = [first[1], second[1], variance];
  const nodes = new Set([...first, ...second, square, variance, plusEps, sqrt, ...(reciprocal ? [reciprocal] : []), scaled!, ...(weighted ? [weighted] : []), ...(shifted ? [shifted] : [])]);
  if (!graph.confined(nodes, last.outputs[0])) return undefined;
  const exponent = square.opType === 'Pow' ? square.inputs[1] : '';
  const inputs = [x, plusEps.inputs[1 - varianceSide], exponent, weightName ?? '', biasName ?? '', ...means.map((m) => m.inputs[1] ?? '')];
  return new FusedNode('LayerNorm', graph.inOrder(nodes), inputs, last.outputs[0], (args: Inputs, context: RunContext) => {
    const [input, epsTensor, power, weight, bias, ...meanAxes] = args as Array<Tensor | undefined>;
    // eps, the exponent and the axes are read once, when prepared.
    if (input === undefined || input.dtype !== 'float32' || input.rank === 0 || epsTensor === undefined || !constantsIn(context, [epsTensor, power, ...meanAxes])) return undefined;
    if (power !== undefined && !isScalar(power, 2)) return undefined;
    const axis = trailingAxis(means, meanAxes, input.rank);
    const eps = epsTensor.rank <= input.rank ? scalarValue(epsTensor) : undefined;
    if (axis === undefined || eps === undefined || !(eps >= 0)) return undefined;
    const normalized = input.shape.slice(axis).join();
    if ([weight, bias].some((t) => t !== undefined && (t.dtype !== 'float32' || t.shape.join() !== normalized))) return undefined;
    const normalize = layerNormFor({ axis, eps });
    return (a) => [normalize(a[0]!, a[3], a[4])];
  });
}

/**
 * The first normalized axis when the three ReduceMeans reduce the same trailing axes (from it to
 * the last) and keep their dims; undefined otherwise.
 */
function trailingAxis(means: OnnxNode[], axesInputs: Array<Tensor | undefined>, rank: number): number | undefined {
  const axes = means.map((m, i) => reductionAxes(m, axesInputs[i], rank, MEAN_AXES_INPUT_SINCE));
  if (means.some((m) => m.int('keepdims', 1) !== 1) || axes.some((a) => a === 'none')) return undefined;
  const [sorted, ...rest] = axes.map((a) => [...(a as number[])].sort((p, q) => p - q).join());
  if (rest.some((a) => a !== sorted)) return undefined;
  const first = (axes[0] as number[]).length === 0 ? rank : Math.min(...(axes[0] as number[]));
  const trailing = Array.from({ length: rank - first }, (_, i) => first + i).join();
  return sorted === trailing && first < rank ? first : undefined;
}
