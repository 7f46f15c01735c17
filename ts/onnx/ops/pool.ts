/**
 * ONNX pooling (MaxPool, AveragePool, their global forms) and LRN on Kiln's 2-D pooling kernels.
 * ceil_mode is padding at the end that never wins a maximum; LRN's sum over neighbouring channels
 * is an average pool over the channel axis.
 */

import { add, div, mul, pow } from '../../ops/elementwise.js';
import { avgPool2d, maxPool2d } from '../../ops/pool.js';
import { max, mean } from '../../ops/reduce.js';
import { reshape } from '../../ops/shape.js';
import type { Tensor } from '../../tensor.js';
import { input, type OnnxNode, type OpImpl } from '../node.js';
import { pool3d } from './volume.js';
import { inFloat } from './numeric.js';
import { from2d, hw, perAxis, sides, spatialRank, to2d, windowPads, type Shaped } from './conv.js';

/** The window of a pooling node, with ceil_mode turned into extra padding at the end. */
export function poolWindow(x: Shaped, node: OnnxNode) {
  const rank = spatialRank(x, node);
  const kernel = node.ints('kernel_shape');
  if (kernel === undefined || kernel.length !== rank) node.fail(`kernel_shape must have ${rank} entries, got ${JSON.stringify(kernel)}`);
  const stride = perAxis(node, 'strides', rank, 1);
  const dilation = perAxis(node, 'dilations', rank, 1);
  const size = x.shape.slice(2);
  const pads = windowPads(node, size, kernel, stride, dilation);
  if (node.int('ceil_mode', 0) === 1) {
    pads.forEach((p, i) => {
      const extent = dilation[i] * (kernel[i] - 1) + 1;
      const span = size[i] + p[0] + p[1] - extent;
      let out = Math.ceil(span / stride[i]) + 1;
      // The last window must start inside the input or its leading padding (PyTorch's and ONNX's rule).
      if ((out - 1) * stride[i] >= size[i] + p[0]) out -= 1;
      p[1] += Math.max((out - 1) * stride[i] + extent - (size[i] + p[0] + p[1]), 0);
    });
  }
  return { rank, kernel: hw(kernel), stride: hw(stride), dilation: hw(dilation), padding: rank === 3 ? [0, 0, 0, 0] as [number, number, number, number] : sides(pads), volume: { kernel, stride, dilation, pads } };
}

const maxPoolOp: OpImpl = (inputs, node) => {
  const x = input(inputs, 0, node);
  if ((node.outputs[1] ?? '') !== '') node.fail('the Indices output is not supported');
  const w = poolWindow(x, node);
  if (w.rank === 3) return [inFloat([x], (f) => pool3d('max', f, w.volume, false, node))];
  return [inFloat([x], (f) => from2d(maxPool2d(to2d(f, w.rank), w.kernel, { stride: w.stride, padding: w.padding, dilation: w.dilation }), w.rank))];
};

const averagePoolOp: OpImpl = (inputs, node) => {
  const x = input(inputs, 0, node);
  const w = poolWindow(x, node);
  const countIncludePad = node.int('count_include_pad', 0) === 1;
  if (w.rank === 3) return [pool3d('avg', x, w.volume, countIncludePad, node)];
  if (w.dilation[0] !== 1 || w.dilation[1] !== 1) node.fail('dilations other than 1 are not supported for AveragePool');
  return [from2d(avgPool2d(to2d(x, w.rank), w.kernel, { stride: w.stride, padding: w.padding, countIncludePad }), w.rank)];
};

const spatialAxes = (x: Tensor): number[] => Array.from({ length: x.rank - 2 }, (_, i) => i + 2);

/** y = x / (bias + alpha/size · Σ x² over `size` neighbouring channels)^beta. x: [N, C, H, W] */
const lrnOp: OpImpl = (inputs, node) => {
  const x = input(inputs, 0, node);
  const size = node.int('size') ?? node.fail('needs the attribute size');
  if (size < 1) node.fail(`size must be positive, got ${size}`);
  if (x.rank < 3) node.fail(`expects [N, C, ...], got [${x.shape.join(', ')}]`);
  const [n, c] = x.shape;
  const rest = x.size / (n * c);
  // [N, 1, C, rest]: an average pool of height `size` over the channels is Σ x² / size.
  const squares = reshape(mul(x, x), [n, 1, c, rest]);
  const before = Math.floor((size - 1) / 2);
  const window = avgPool2d(squares, [size, 1], { stride: 1, padding: [before, size - 1 - before, 0, 0], countIncludePad: true });
  const scale = pow(add(mul(window, node.float('alpha', 1e-4)), node.float('bias', 1)), node.float('beta', 0.75));
  return [div(x, reshape(scale, [...x.shape]))];
};

export const poolOps: Record<string, OpImpl> = {
  MaxPool: maxPoolOp,
  AveragePool: averagePoolOp,
  GlobalAveragePool: (inputs, node) => {
    const x = input(inputs, 0, node);
    return [mean(x, spatialAxes(x), true)];
  },
  GlobalMaxPool: (inputs, node) => {
    const x = input(inputs, 0, node);
    return [max(x, spatialAxes(x), true)];
  },
  LRN: lrnOp,
};
