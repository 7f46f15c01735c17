/**
 * 2-D pooling over [batch, channels, height, width] (NCHW, PyTorch's layout): one Rust kernel
 * each for max and average, with their gradients (crates/kiln-core/src/ops/pool.rs).
 */

import { backend } from '../engine.js';
import { wrap, type Tensor } from '../tensor.js';
import { handleOf } from './util.js';
// Pooling pads as convolution does (one type, documented in conv.ts).
import type { Padding2d } from './conv.js';

/** A size per spatial axis: one number for both, or [height, width]. */
export type Size2d = number | [number, number];


/** Options of `maxPool2d`. */
export interface MaxPool2dOptions {
  /** Step between windows (default: the kernel size, so windows tile the input). */
  stride?: Size2d;
  /** Default 0. Padded positions never win the maximum. */
  padding?: Padding2d;
  /** Spacing between the taps of a window (default 1). */
  dilation?: Size2d;
}

/** Options of `avgPool2d`. */
export interface AvgPool2dOptions {
  /** Step between windows (default: the kernel size). */
  stride?: Size2d;
  /** Default 0. */
  padding?: Padding2d;
  /**
   * Divide every window by kernelH·kernelW, padded positions counting as zeros (default true, as
   * PyTorch); false divides by the taps inside the input, as TensorFlow's 'same' average pooling.
   */
  countIncludePad?: boolean;
}

/** [height, width] from a Size2d, each a positive integer. */
function pair(op: string, what: string, v: Size2d): [number, number] {
  const out: [number, number] = typeof v === 'number' ? [v, v] : Array.isArray(v) && v.length === 2 ? [v[0], v[1]] : [NaN, NaN];
  if (!out.every((d) => Number.isInteger(d) && d >= 1)) {
    throw new Error(`${op}: ${what} must be a positive integer or [height, width] of positive integers, got ${JSON.stringify(v)}`);
  }
  return out;
}

/** [top, bottom, left, right] for an input of spatial size [h, w]. */
/** (top, bottom, left, right). */
type Padding4 = [number, number, number, number];

function paddingOf(op: string, padding: Padding2d, x: Tensor, kernel: [number, number], stride: [number, number], dilation: [number, number]): Padding4 {
  if (padding === 'valid') return [0, 0, 0, 0];
  if (padding === 'same') {
    // Inputs of the wrong rank get no padding here; the kernel then reports the shape.
    if (x.rank !== 4) return [0, 0, 0, 0];
    return [0, 1].flatMap((a) => {
      const size = x.shape[2 + a];
      const extent = (kernel[a] - 1) * dilation[a] + 1;
      const total = Math.max((Math.ceil(size / stride[a]) - 1) * stride[a] + extent - size, 0);
      return [Math.floor(total / 2), total - Math.floor(total / 2)];
    }) as Padding4;
  }
  const list = typeof padding === 'number' ? [padding, padding, padding, padding]
    : Array.isArray(padding) && padding.length === 2 ? [padding[0], padding[0], padding[1], padding[1]]
    : Array.isArray(padding) && padding.length === 4 ? [...padding]
    : [NaN];
  if (!list.every((p) => Number.isInteger(p) && p >= 0)) {
    throw new Error(`${op}: padding must be a non-negative integer, [padH, padW], [top, bottom, left, right], 'valid' or 'same', got ${JSON.stringify(padding)}`);
  }
  return list as Padding4;
}

/** The window arguments both kernels take: kernel, stride, padding (4 sides), dilation. */
function windowOf(op: string, x: Tensor, kernelSize: Size2d, options: { stride?: Size2d; padding?: Padding2d; dilation?: Size2d }) {
  const kernel = pair(op, 'kernelSize', kernelSize);
  const stride = options.stride === undefined ? kernel : pair(op, 'stride', options.stride);
  const dilation = options.dilation === undefined ? ([1, 1] as [number, number]) : pair(op, 'dilation', options.dilation);
  const padding = paddingOf(op, options.padding ?? 0, x, kernel, stride, dilation);
  return { kernel, stride, padding, dilation };
}

/**
 * Max pooling. x: [batch, channels, height, width] float32 -> [batch, channels, outH, outW] with
 * out = floor((in + padBefore + padAfter − dilation·(kernel − 1) − 1) / stride) + 1.
 * The gradient goes to the first maximum of each window (PyTorch's rule for ties).
 */
export function maxPool2d(x: Tensor, kernelSize: Size2d, options: MaxPool2dOptions = {}): Tensor {
  const b = backend();
  const h = handleOf(x, 'maxPool2d', b);
  const { kernel, stride, padding, dilation } = windowOf('maxPool2d', x, kernelSize, options);
  return wrap(b.impl.maxPool2d(h, { kernel, stride, padding, dilation }), b);
}

/**
 * Average pooling. x: [batch, channels, height, width] float32 -> [batch, channels, outH, outW]
 * (sizes as maxPool2d). See AvgPool2dOptions.countIncludePad for the divisor at the borders.
 */
export function avgPool2d(x: Tensor, kernelSize: Size2d, options: AvgPool2dOptions = {}): Tensor {
  const b = backend();
  const h = handleOf(x, 'avgPool2d', b);
  const { kernel, stride, padding } = windowOf('avgPool2d', x, kernelSize, options);
  const countIncludePad = options.countIncludePad ?? true;
  if (typeof countIncludePad !== 'boolean') throw new Error(`avgPool2d: countIncludePad must be a boolean, got ${JSON.stringify(countIncludePad)}`);
  return wrap(b.impl.avgPool2d(h, { kernel, stride, padding, countIncludePad }), b);
}
