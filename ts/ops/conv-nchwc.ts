/**
 * Convolution in the channel-blocked layout NCHWc, the layout onnxruntime's CPU convolutions run
 * in: an activation [N, C, H, W] held as [N, ceil(C/16), H, W, 16], so each pixel's 16 channels of
 * a block are one AVX-512 vector (crates/kiln-core/src/ops/conv_nchwc.rs). Internal: the ONNX
 * layout pass (ts/onnx/layout/) keeps activations blocked between convolutions with these. The
 * true channel count does not travel with a blocked tensor (the last block's extra channels are
 * padding no result reads): `fromNchwc` is told it.
 *
 * Inference only: with gradients recorded and an input that requires one, each refuses with an
 * error (conv2d trains). The CPU backends (native, WASM) run them; the GPU reports no kernel.
 */

import { backend, keep } from '../engine.js';
import type { Backend } from '../backends/backend.js';
import { wrap, type Tensor } from '../tensor.js';
import { conv2dPadding, pair, type ConvActivation, type Padding2d } from './conv.js';
import { full } from './creation.js';
import { handleOf, optionalHandleOf, resultsOf } from './util.js';

/** Channels per block of the NCHWc layout. */
export const NCHWC_BLOCK = 16;

/** Options of `conv2dNchwc`: conv2d's, groups 1, with tensors in the blocked layout. */
export interface Conv2dNchwcOptions {
  stride?: number | [number, number];
  padding?: Padding2d;
  dilation?: number | [number, number];
  /** [outChannels] (plain; padded to whole blocks inside). */
  bias?: Tensor | null;
  /** The output's shape [N, ceil(O/16), OH, OW, 16]: added before the activation. */
  residual?: Tensor | null;
  activation?: ConvActivation | null;
  /** leakyRelu's slope (default 0.01), elu's scale (default 1). */
  alpha?: number;
}

/** NCHW [N, C, H, W] -> NCHWc [N, ceil(C/16), H, W, 16], padded channels zero. */
export function toNchwc(x: Tensor): Tensor {
  const be = backend();
  return wrap(be.impl.toNchwc(handleOf(x, 'toNchwc', be, 'x')), be);
}

/** NCHWc [N, ceil(C/16), H, W, 16] -> NCHW [N, C, H, W] with C = `channels`. */
export function fromNchwc(x: Tensor, channels: number): Tensor {
  const be = backend();
  return wrap(be.impl.fromNchwc(handleOf(x, 'fromNchwc', be, 'x'), channels), be);
}

/** Weight [O, C, KH, KW] (groups 1) -> packed [ceil(O/16), ceil(C/16), KH, KW, 16 (c), 16 (o)], zero past O and C. */
export function packNchwcFilters(w: Tensor): Tensor {
  const be = backend();
  return wrap(be.impl.packNchwcFilters(handleOf(w, 'packNchwcFilters', be, 'w')), be);
}

/**
 * conv2d (groups 1) of blocked x [N, Cb, H, W, 16] with `packed` filters (packNchwcFilters) ->
 * blocked [N, ceil(O/16), OH, OW, 16]: `activation(conv2d(x, w) + residual)` in the blocked layout.
 */
export function conv2dNchwc(x: Tensor, packed: Tensor, options: Conv2dNchwcOptions = {}): Tensor {
  const op = 'conv2dNchwc';
  const be = backend();
  handleOf(x, op, be, 'x');
  handleOf(packed, op, be, 'packed');
  optionalHandleOf(options.bias, op, be, 'bias');
  optionalHandleOf(options.residual, op, be, 'residual');
  return conv2dNchwcFor(x.shape, packed, options)(x, options.residual ?? undefined);
}

/**
 * conv2dNchwc resolved once for inputs of `xShape`'s dims, the filters `packed` and `options`
 * (its residual aside): a function of x and the residual that resolves and checks nothing again
 * (the caller gives tensors of those dims on the active backend; the kernel still checks its
 * shapes) and knows its result's shape after the first call. For the ONNX layout pass, which
 * makes the same call on every run (ts/onnx/layout/nodes.ts).
 */
export function conv2dNchwcFor(xShape: readonly number[], packed: Tensor, options: Omit<Conv2dNchwcOptions, 'residual'>): (x: Tensor, residual: Tensor | undefined) => Tensor {
  const be = backend();
  const { geometry, activation, alpha } = resolve('conv2dNchwc', '', xShape, packed, options);
  const bias = options.bias ?? undefined;
  const result = resultsOf(be);
  return (x, residual) => result(be.impl.conv2dNchwc(x.handle, packed.handle, bias?.handle ?? -1, residual?.handle ?? -1, geometry, alpha, activation));
}

/** One filter set of `conv2dNchwcConcat`: conv2dNchwc's options (no residual) with its packed filters. */
export interface Conv2dNchwcFilterSet extends Omit<Conv2dNchwcOptions, 'residual'> {
  packed: Tensor;
}

/**
 * Several blocked convolutions of x, side by side on the block axis -> [N, Σ ceil(O_i/16), OH, OW, 16]:
 * conv2dConcat in NCHWc (each set's blocks written in place; the channel concatenation when every
 * set but the last has whole blocks). Every set must give the same OH x OW. Inference only.
 */
export function conv2dNchwcConcat(x: Tensor, sets: readonly Conv2dNchwcFilterSet[]): Tensor {
  const op = 'conv2dNchwcConcat';
  const be = backend();
  handleOf(x, op, be, 'x');
  sets.forEach((s, i) => {
    handleOf(s.packed, op, be, `sets[${i}].packed`);
    optionalHandleOf(s.bias, op, be, `sets[${i}].bias`);
  });
  const call = conv2dNchwcConcatFor(x.shape, sets);
  try {
    return call(x);
  } finally {
    call.dispose();
  }
}

/**
 * conv2dNchwcConcat resolved once for inputs of `xShape`'s dims and these sets, as
 * conv2dNchwcFor: a function of x. It holds the zero biases of sets without one (when another
 * has one: the boundary takes no biases or one per set) until `dispose`.
 */
export function conv2dNchwcConcatFor(xShape: readonly number[], sets: readonly Conv2dNchwcFilterSet[]): ((x: Tensor) => Tensor) & { dispose(): void } {
  const op = 'conv2dNchwcConcat';
  const be = backend();
  const resolved = sets.map((set, i) => resolve(op, `sets[${i}].`, xShape, set.packed, set));
  const zeros = sets.some((s) => s.bias != null) ? sets.map((s) => (s.bias == null ? keep(zerosOf(s.packed)) : undefined)) : [];
  const biases = zeros.map((z, i) => (z ?? sets[i].bias)!);
  const geometries = resolved.map((r) => r.geometry);
  const activations = resolved.map((r) => r.activation ?? '');
  const alphas = resolved.map((r) => r.alpha);
  const result = resultsOf(be);
  const call = (x: Tensor) =>
    result(be.impl.conv2dNchwcConcat(x.handle, sets.map((s) => s.packed.handle), biases.map((b) => b.handle), geometries, activations, alphas));
  return Object.assign(call, { dispose: () => zeros.forEach((z) => z?.dispose()) });
}

/**
 * A one-input op on blocked tensors (a pooling, a reorder) fixed for repeated calls on x of the
 * same dims, as conv2dNchwcFor: `kernel` maps x's handle to the result's on the active backend.
 */
export function unaryNchwcFor(kernel: (impl: Backend, x: number) => number): (x: Tensor) => Tensor {
  const be = backend();
  const result = resultsOf(be);
  return (x) => result(kernel(be.impl, x.handle));
}

/** A zero bias for packed filters [Ob, ...]: Ob·16 channels. */
const zerosOf = (packed: Tensor): Tensor => full([(packed.shape[0] ?? 0) * NCHWC_BLOCK], 0);

/** A blocked convolution's geometry, activation and alpha; `what` prefixes option names in errors. */
function resolve(op: string, what: string, xShape: readonly number[], packed: Tensor, options: Omit<Conv2dNchwcOptions, 'residual' | 'bias'>) {
  const stride = pair(op, `${what}stride`, options.stride, 1, 1);
  const dilation = pair(op, `${what}dilation`, options.dilation, 1, 1);
  // 'same' reads the plane (dims 2, 3 of x) and the kernel (dims 2, 3 of the packed filters).
  const padding = conv2dPadding(op, options.padding, [xShape[0], 0, xShape[2], xShape[3]], [0, 0, packed.shape[2], packed.shape[3]], stride, dilation);
  const activation = options.activation ?? undefined;
  return { geometry: { stride, padding, dilation, groups: 1 }, activation, alpha: options.alpha ?? (activation === 'elu' ? 1 : 0.01) };
}

/**
 * maxPool2d of a blocked x [N, Cb, H, W, 16] -> [N, Cb, OH, OW, 16]: each channel pooled as
 * maxPool2d pools it (window sizes as maxPool2d's options, resolved: [h, w] pairs and
 * [top, bottom, left, right] padding). Inference only.
 */
export function maxPool2dNchwc(x: Tensor, window: { kernel: [number, number]; stride: [number, number]; padding: [number, number, number, number]; dilation: [number, number] }): Tensor {
  const be = backend();
  return wrap(be.impl.maxPool2dNchwc(handleOf(x, 'maxPool2dNchwc', be, 'x'), window), be);
}

/**
 * avgPool2d of a blocked x [N, Cb, H, W, 16] -> [N, Cb, OH, OW, 16]: each channel averaged as
 * avgPool2d averages it (the window resolved as maxPool2dNchwc's, no dilation; countIncludePad
 * as avgPool2d's). A window of the whole plane is GlobalAveragePool. Inference only.
 */
export function avgPool2dNchwc(x: Tensor, window: { kernel: [number, number]; stride: [number, number]; padding: [number, number, number, number]; countIncludePad: boolean }): Tensor {
  const be = backend();
  return wrap(be.impl.avgPool2dNchwc(handleOf(x, 'avgPool2dNchwc', be, 'x'), window), be);
}
