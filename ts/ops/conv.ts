/**
 * 2-D convolution and transposed convolution (NCHW, PyTorch's weight layouts). The kernels and
 * both backward passes are in Rust (crates/kiln-core/src/ops/conv.rs); this file resolves the
 * options (stride, 'same' padding, ...) into the per-side numbers the kernel takes.
 */

import { backend } from '../engine.js';
import { wrap, type Tensor } from '../tensor.js';
import { full } from './creation.js';
import { handleOf, optionalHandleOf } from './util.js';

/**
 * Padding of a convolution: one number for all sides, [height, width] (each on both sides),
 * [top, bottom, left, right], 'valid' (none) or 'same' (as TensorFlow: the output is
 * ceil(input / stride), with the odd pixel of padding at the bottom/right when the total is odd).
 */
export type Padding2d = number | [number, number] | [number, number, number, number] | 'same' | 'valid';

/** Options of `conv2d`: stride, padding, dilation, groups and bias. */
export interface Conv2dOptions {
  /** Step between output positions: one number or [height, width] (default 1). */
  stride?: number | [number, number];
  /** Default 0 ('valid'). */
  padding?: Padding2d;
  /** Spacing between kernel taps: one number or [height, width] (default 1). */
  dilation?: number | [number, number];
  /** Channels split into this many independent groups (default 1; groups = channels is depthwise). */
  groups?: number;
  /** Added per output channel: [outChannels]. */
  bias?: Tensor | null;
}

/** Activations conv2d can apply as it writes its output (those whose derivative follows from the output). */
export type ConvActivation = 'relu' | 'leakyRelu' | 'elu' | 'sigmoid' | 'tanh';

/** Options of `conv2d`: those every convolution takes, a fused residual and a fused activation. */
export interface Conv2dActivationOptions extends Conv2dOptions {
  /**
   * [batch, outChannels, outHeight, outWidth], float32: added to the output as the kernel writes
   * it, before the activation (a ResNet block's `relu(conv(x) + identity)` in one pass; its
   * gradient is the gradient before the activation, as for the separate add).
   */
  residual?: Tensor | null;
  /**
   * Applied to the output as the kernel writes it, in the same pass (one read and write of the
   * output fewer than a separate activation op; the gradient is the same).
   */
  activation?: ConvActivation | null;
  /** leakyRelu's negative slope (default 0.01) or elu's scale (default 1). */
  alpha?: number;
}

/** Options of `convTranspose2d`: those of conv2d, with padding cropped from the output and an output padding. */
export interface ConvTranspose2dOptions extends Omit<Conv2dOptions, 'padding'> {
  /**
   * Rows/columns cropped from the full output: as conv2d's padding. 'same' makes the output
   * input · stride (TensorFlow's conv2dTranspose 'same'); 'valid' is 0.
   */
  padding?: Padding2d;
  /** Extra rows/columns at the bottom/right, to pick among the output sizes a strided conv maps from (default 0; must be < stride or < dilation). */
  outputPadding?: number | [number, number];
}

/** A pair from one number or [h, w], each a whole number >= min; `what` names it in the error. */
export function pair(op: string, what: string, v: number | [number, number] | undefined, fallback: number, min: number): [number, number] {
  const p: unknown[] = v === undefined ? [fallback, fallback] : Array.isArray(v) ? v : [v, v];
  if (p.length !== 2 || !p.every((d) => Number.isInteger(d) && (d as number) >= min)) {
    throw new Error(`${op}: ${what} must be an integer >= ${min} or a pair [height, width] of them, got ${JSON.stringify(v)}`);
  }
  return p as [number, number];
}

function checkGroups(op: string, groups: unknown): number {
  if (!(Number.isInteger(groups) && (groups as number) >= 1)) throw new Error(`${op}: groups must be an integer >= 1, got ${JSON.stringify(groups)}`);
  return groups as number;
}

/** Explicit padding [top, bottom, left, right] from a number or an array. */
function explicitPadding(op: string, padding: unknown): [number, number, number, number] {
  const list: unknown[] = typeof padding === 'number' ? [padding, padding] : Array.isArray(padding) ? padding : [];
  const ok = (list.length === 2 || list.length === 4) && list.every((d) => Number.isInteger(d) && (d as number) >= 0);
  if (!ok) {
    throw new Error(`${op}: padding must be 'same', 'valid', an integer >= 0, [height, width] or [top, bottom, left, right], got ${JSON.stringify(padding)}`);
  }
  const p = list as number[];
  return p.length === 2 ? [p[0], p[0], p[1], p[1]] : [p[0], p[1], p[2], p[3]];
}

/** Splits a total padding as TensorFlow does: the odd pixel goes after (bottom/right). */
function split(total: number): [number, number] {
  const before = Math.floor(total / 2);
  return [before, total - before];
}

/**
 * conv2d's padding per side. 'same' needs the input size (dims 2, 3 of x) and the kernel size
 * (dims 2, 3 of the weight): total = max((ceil(in / stride) - 1)·stride + dilation·(k - 1) + 1 - in, 0).
 */
export function conv2dPadding(op: string, padding: Padding2d | undefined, input: readonly number[], kernel: readonly number[], stride: [number, number], dilation: [number, number]): [number, number, number, number] {
  if (padding === undefined || padding === 'valid') return [0, 0, 0, 0];
  if (padding !== 'same') return explicitPadding(op, padding);
  if (input.length !== 4 || kernel.length !== 4) return [0, 0, 0, 0]; // the kernel reports the rank error
  const total = (axis: 0 | 1): number => {
    const size = input[axis + 2];
    const extent = dilation[axis] * (kernel[axis + 2] - 1) + 1;
    return Math.max((Math.ceil(size / stride[axis]) - 1) * stride[axis] + extent - size, 0);
  };
  return [...split(total(0)), ...split(total(1))] as [number, number, number, number];
}

/**
 * convTranspose2d's padding per side and output padding. 'same' crops what the conv with 'same'
 * padding from an output of input·stride pads, and adds output padding where the kernel is
 * shorter than the stride, so the output is exactly input·stride.
 */
export function convTranspose2dPadding(op: string, padding: Padding2d | undefined, outputPadding: number | [number, number] | undefined, kernel: readonly number[], stride: [number, number], dilation: [number, number]): { padding: [number, number, number, number]; outputPadding: [number, number] } {
  const extra = pair(op, 'outputPadding', outputPadding, 0, 0);
  if (padding !== 'same') return { padding: padding === undefined || padding === 'valid' ? [0, 0, 0, 0] : explicitPadding(op, padding), outputPadding: extra };
  if (outputPadding !== undefined && (extra[0] !== 0 || extra[1] !== 0)) {
    throw new Error(`${op}: padding 'same' sets the output size to input · stride itself; outputPadding ${JSON.stringify(outputPadding)} cannot be combined with it`);
  }
  if (kernel.length !== 4) return { padding: [0, 0, 0, 0], outputPadding: [0, 0] };
  const extent = (axis: 0 | 1): number => dilation[axis] * (kernel[axis + 2] - 1) + 1;
  const total = (axis: 0 | 1): number => Math.max(extent(axis) - stride[axis], 0);
  return {
    padding: [...split(total(0)), ...split(total(1))] as [number, number, number, number],
    outputPadding: [Math.max(stride[0] - extent(0), 0), Math.max(stride[1] - extent(1), 0)],
  };
}

/** The arguments both convolutions share, resolved and checked (bias: a handle or -1). */
function convArgs(op: string, x: Tensor, w: Tensor, options: Conv2dOptions) {
  const be = backend();
  return {
    be,
    xh: handleOf(x, op, be, 'x'),
    wh: handleOf(w, op, be, 'w'),
    bias: optionalHandleOf(options.bias, op, be, 'bias'),
    stride: pair(op, 'stride', options.stride, 1, 1),
    dilation: pair(op, 'dilation', options.dilation, 1, 1),
    groups: checkGroups(op, options.groups ?? 1),
  };
}

/**
 * 2-D convolution (cross-correlation, as PyTorch's conv2d).
 * x: [batch, inChannels, height, width], w: [outChannels, inChannels / groups, kh, kw],
 * bias: [outChannels] -> [batch, outChannels, outHeight, outWidth] with
 * outHeight = (height + padTop + padBottom - dilation·(kh - 1) - 1) / stride + 1 (rounded down).
 * `residual` (the output's shape) is added and `activation` ('relu', ...) applied in the same pass
 * as the kernel writes the output: `activation(conv2d(x, w) + residual)`.
 */
export function conv2d(x: Tensor, w: Tensor, options: Conv2dActivationOptions = {}): Tensor {
  const op = 'conv2d';
  const { be, xh, wh, bias, stride, dilation, groups } = convArgs(op, x, w, options);
  const padding = conv2dPadding(op, options.padding, x.shape, w.shape, stride, dilation);
  const residual = optionalHandleOf(options.residual, op, be, 'residual');
  const activation = options.activation ?? undefined;
  const alpha = options.alpha ?? (activation === 'elu' ? 1 : 0.01);
  return wrap(be.impl.conv2d(xh, wh, bias, residual, { stride, padding, dilation, groups }, alpha, activation), be);
}

/** One filter set of `conv2dConcat`: conv2d's options with its own weight. */
export interface Conv2dFilterSet extends Omit<Conv2dActivationOptions, 'residual'> {
  /** [outChannels, inChannels / groups, kh, kw], float32. */
  weight: Tensor;
}

/**
 * Several convolutions of one input, their outputs concatenated on channels:
 * `concat([conv2d(x, set.weight, set) for each set], 1)`, as SqueezeNet's fire modules (a 1x1
 * and a 3x3 expand of one squeeze) and Inception's branches are built.
 * x: [batch, inChannels, height, width]; set i's weight [outChannels_i, inChannels / groups_i,
 * kh_i, kw_i] -> [batch, Σ outChannels_i, outHeight, outWidth]; every set must give the same
 * outHeight x outWidth (an error names the sets otherwise). Each set has its own stride, padding,
 * dilation, groups, bias and fused activation; none takes a residual.
 *
 * Native kernels write each set's output straight into its channel slice of the result, so the
 * concatenation costs no pass of its own; the other backends run conv2d per set and concat.
 * With gradients recorded it runs as conv2d per set and concat, so it trains as they do.
 */
export function conv2dConcat(x: Tensor, sets: readonly Conv2dFilterSet[]): Tensor {
  const op = 'conv2dConcat';
  const be = backend();
  const xh = handleOf(x, op, be, 'x');
  const resolved = sets.map((set, i) => {
    const stride = pair(op, `sets[${i}].stride`, set.stride, 1, 1);
    const dilation = pair(op, `sets[${i}].dilation`, set.dilation, 1, 1);
    const activation = set.activation ?? undefined;
    return {
      weight: handleOf(set.weight, op, be, `sets[${i}].weight`),
      bias: set.bias == null ? undefined : handleOf(set.bias, op, be, `sets[${i}].bias`),
      geometry: { stride, padding: conv2dPadding(op, set.padding, x.shape, set.weight.shape, stride, dilation), dilation, groups: checkGroups(op, set.groups ?? 1) },
      activation: activation ?? '',
      alpha: set.alpha ?? (activation === 'elu' ? 1 : 0.01),
    };
  });
  // The boundary takes no biases or one per set: a set without one adds zeros.
  const anyBias = resolved.some((s) => s.bias !== undefined);
  const zeros: Tensor[] = [];
  const biases = anyBias
    ? resolved.map((s, i) => {
        if (s.bias !== undefined) return s.bias;
        const z = full([sets[i].weight.shape[0] ?? 0], 0);
        zeros.push(z);
        return handleOf(z, op, be, `sets[${i}].bias`);
      })
    : [];
  try {
    return wrap(be.impl.conv2dConcat(xh, resolved.map((s) => s.weight), biases, resolved.map((s) => s.geometry), resolved.map((s) => s.activation), resolved.map((s) => s.alpha)), be);
  } finally {
    for (const z of zeros) z.dispose();
  }
}

/**
 * Transposed convolution (PyTorch's conv_transpose2d): the gradient of conv2d with respect to its
 * input, used to upsample. x: [batch, inChannels, height, width],
 * w: [inChannels, outChannels / groups, kh, kw], bias: [outChannels] ->
 * [batch, outChannels, outHeight, outWidth] with
 * outHeight = (height - 1)·stride - padTop - padBottom + dilation·(kh - 1) + outputPadding + 1.
 */
export function convTranspose2d(x: Tensor, w: Tensor, options: ConvTranspose2dOptions = {}): Tensor {
  const op = 'convTranspose2d';
  const { be, xh, wh, bias, stride, dilation, groups } = convArgs(op, x, w, options);
  const { padding, outputPadding } = convTranspose2dPadding(op, options.padding, options.outputPadding, w.shape, stride, dilation);
  return wrap(be.impl.convTranspose2d(xh, wh, bias, { stride, padding, dilation, groups }, outputPadding), be);
}
