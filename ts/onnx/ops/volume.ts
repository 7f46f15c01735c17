/**
 * 3-D convolution and pooling composed from Kiln's 2-D kernels: the depth axis is unrolled into
 * the batch. For each kernel tap kd along depth, the input planes that tap meets (one per output
 * depth) are gathered, folded into the batch, run through the 2-D op with that tap's 2-D kernel,
 * and the taps are combined (summed for convolution, max/mean for pooling). kd 2-D calls per op:
 * no 3-D kernel needed, gradients flow through gather and the 2-D kernels.
 */

import { tensor } from '../../ops/creation.js';
import { add, maximum, div } from '../../ops/elementwise.js';
import { conv2d } from '../../ops/conv.js';
import { avgPool2d, maxPool2d } from '../../ops/pool.js';
import { gather, pad, permute, reshape, slice } from '../../ops/shape.js';
import type { Tensor } from '../../tensor.js';
import type { OnnxNode } from '../node.js';

export interface Window3d {
  kernel: number[];
  stride: number[];
  dilation: number[];
  /** Per spatial axis [begin, end]. */
  pads: Array<[number, number]>;
}

/** x [N, C, D, H, W] padded along depth; for tap k, the planes [N·outD, C, H, W] it meets. */
function planesForTap(x: Tensor, k: number, outDepth: number, w: Window3d): Tensor {
  const [n, c, , h, width] = x.shape;
  const index = Int32Array.from({ length: outDepth }, (_, d) => d * w.stride[0] + k * w.dilation[0]);
  const picked = gather(x, tensor(index, [outDepth], 'int32'), 2); // [N, C, outD, H, W]
  return reshape(permute(picked, [0, 2, 1, 3, 4]), [n * outDepth, c, h, width]);
}

/** [N·outD, C', H', W'] back to [N, C', outD, H', W']. */
function unfold(y: Tensor, n: number, outDepth: number): Tensor {
  const [, c, h, w] = y.shape;
  return permute(reshape(y, [n, outDepth, c, h, w]), [0, 2, 1, 3, 4]);
}

function outDepthOf(x: Tensor, w: Window3d, extraEnd = 0): number {
  const extent = w.dilation[0] * (w.kernel[0] - 1) + 1;
  return Math.floor((x.shape[2] + w.pads[0][0] + w.pads[0][1] + extraEnd - extent) / w.stride[0]) + 1;
}

const padDepth = (x: Tensor, w: Window3d, value: number): Tensor =>
  w.pads[0][0] === 0 && w.pads[0][1] === 0 ? x : pad(x, [[0, 0], [0, 0], w.pads[0], [0, 0], [0, 0]], value);

/** Conv over [N, C, D, H, W] with weight [M, C / groups, kd, kh, kw]. */
export function conv3d(x: Tensor, weight: Tensor, bias: Tensor | undefined, groups: number, w: Window3d): Tensor {
  const n = x.shape[0];
  const outDepth = outDepthOf(x, w);
  const padded = padDepth(x, w, 0);
  let total: Tensor | undefined;
  for (let k = 0; k < w.kernel[0]; k++) {
    const [m, cg, , kh, kw] = weight.shape;
    const tap = reshape(slice(weight, [0, 0, k, 0, 0], [m, cg, 1, kh, kw]), [m, cg, kh, kw]);
    const y = conv2d(planesForTap(padded, k, outDepth, w), tap, {
      stride: [w.stride[1], w.stride[2]],
      dilation: [w.dilation[1], w.dilation[2]],
      padding: [w.pads[1][0], w.pads[1][1], w.pads[2][0], w.pads[2][1]],
      groups,
      bias: k === 0 ? bias ?? null : null,
    });
    total = total === undefined ? y : add(total, y);
  }
  return unfold(total!, n, outDepth);
}

/** Max or average pooling over [N, C, D, H, W]. Average pooling excluding padding needs no padding along depth. */
export function pool3d(kind: 'max' | 'avg', x: Tensor, w: Window3d, countIncludePad: boolean, node: OnnxNode): Tensor {
  if (kind === 'avg' && !countIncludePad && (w.pads[0][0] > 0 || w.pads[0][1] > 0)) {
    node.fail('3-D average pooling with depth padding and count_include_pad = 0 is not supported');
  }
  if (w.dilation[1] !== 1 || w.dilation[2] !== 1) {
    if (kind === 'avg') node.fail('dilations other than 1 are not supported for AveragePool');
  }
  const n = x.shape[0];
  const outDepth = outDepthOf(x, w);
  const padded = padDepth(x, w, kind === 'max' ? -Infinity : 0);
  let combined: Tensor | undefined;
  for (let k = 0; k < w.kernel[0]; k++) {
    const planes = planesForTap(padded, k, outDepth, w);
    const options = { stride: [w.stride[1], w.stride[2]] as [number, number], padding: [w.pads[1][0], w.pads[1][1], w.pads[2][0], w.pads[2][1]] as [number, number, number, number] };
    const y = kind === 'max'
      ? maxPool2d(planes, [w.kernel[1], w.kernel[2]], { ...options, dilation: [w.dilation[1], w.dilation[2]] })
      : avgPool2d(planes, [w.kernel[1], w.kernel[2]], { ...options, countIncludePad });
    combined = combined === undefined ? y : kind === 'max' ? maximum(combined, y) : add(combined, y);
  }
  const out = unfold(combined!, n, outDepth);
  return kind === 'max' ? out : div(out, w.kernel[0]);
}

