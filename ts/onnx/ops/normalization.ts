/**
 * ONNX normalizations: BatchNormalization on Kiln's fused kernel (batch statistics and in-place
 * running updates in training mode, as PyTorch), LayerNormalization on Kiln's layerNorm kernel,
 * InstanceNormalization composed from mean and variance.
 */

import { add, mul, rsqrt, sub } from '../../ops/elementwise.js';
import { batchNorm } from '../../ops/batch-norm.js';
import { layerNormFor } from '../../ops/prepared.js';
import { mean, variance } from '../../ops/reduce.js';
import { reshape } from '../../ops/shape.js';
import type { Tensor } from '../../tensor.js';
import { axisOf, input, type OpImpl, type PrepareImpl } from '../node.js';

const batchNormalizationOp: OpImpl = (inputs, node, context) => {
  const x = input(inputs, 0, node);
  // The model's training mode decides (fit calls model.train()); opset 14's training_mode says how
  // the graph was exported, which matters less to a user fine-tuning it.
  const training = context.training;
  const y = batchNorm(x, {
    weight: input(inputs, 1, node),
    bias: input(inputs, 2, node),
    runningMean: input(inputs, 3, node),
    runningVar: input(inputs, 4, node),
    training,
    // ONNX: running = running · momentum + batch · (1 − momentum); Kiln's momentum is the batch's weight.
    momentum: 1 - node.float('momentum', 0.9),
    eps: node.float('epsilon', 1e-5),
  });
  return [y];
};

/**
 * Normalizes over the axes from `axis` to the end; outputs Y and, if asked, Mean and InvStdDev.
 * Y alone, with a scale and shift of the normalized shape (what exporters write), runs on Kiln's
 * fused layerNorm kernel; the statistics outputs and broadcast scales are composed.
 */
const layerNormalizationOp: OpImpl = (inputs, node, context) => {
  const x = input(inputs, 0, node);
  const axis = axisOf(node.int('axis', -1), x.rank, node);
  const [scale, shift] = [input(inputs, 1, node), inputs[2]];
  const fused = layerNormalizationPrepared(inputs, node, context);
  if (fused !== undefined) return fused(inputs);
  const axes = Array.from({ length: x.rank - axis }, (_, i) => axis + i);
  const mu = mean(x, axes, true);
  const invStd = rsqrt(add(variance(x, axes, true), node.float('epsilon', 1e-5)));
  let y = mul(sub(x, mu), invStd);
  y = mul(y, scale);
  if (shift !== undefined) y = add(y, shift);
  return [y, mu, invStd];
};

/**
 * LayerNormalization's fused kernel resolved for inputs like these (../node.ts, Prepared): Y alone,
 * float32, with a scale and shift of the normalized shape; undefined otherwise.
 */
const layerNormalizationPrepared: PrepareImpl = (inputs, node) => {
  const x = input(inputs, 0, node);
  const axis = axisOf(node.int('axis', -1), x.rank, node);
  const [scale, shift] = [input(inputs, 1, node), inputs[2]];
  const normalized = x.shape.slice(axis).join();
  const fits = (t: Tensor | undefined) => t === undefined || (t.dtype === 'float32' && t.shape.join() === normalized);
  if (!(node.outputs.slice(1).every((o) => o === '') && x.dtype === 'float32' && fits(scale) && fits(shift))) return undefined;
  const normalize = layerNormFor({ axis, eps: node.float('epsilon', 1e-5) });
  return (a) => [normalize(a[0]!, a[1], a[2])];
};

export const normalizationPrepared: Record<string, PrepareImpl> = {
  LayerNormalization: layerNormalizationPrepared,
};

/** Per sample and channel over the spatial axes. x: [N, C, ...], scale and B: [C]. */
const instanceNormalizationOp: OpImpl = (inputs, node) => {
  const x = input(inputs, 0, node);
  if (x.rank < 3) node.fail(`expects [N, C, ...], got [${x.shape.join(', ')}]`);
  const axes = Array.from({ length: x.rank - 2 }, (_, i) => i + 2);
  const perChannel = (t: Tensor): Tensor => reshape(t, [x.shape[1], ...axes.map(() => 1)]);
  const normalized = mul(sub(x, mean(x, axes, true)), rsqrt(add(variance(x, axes, true), node.float('epsilon', 1e-5))));
  return [add(mul(normalized, perChannel(input(inputs, 1, node))), perChannel(input(inputs, 2, node)))];
};

export const normalizationOps: Record<string, OpImpl> = {
  BatchNormalization: batchNormalizationOp,
  LayerNormalization: layerNormalizationOp,
  InstanceNormalization: instanceNormalizationOp,
};
