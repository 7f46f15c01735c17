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

import { backend } from '../engine.js';
import { wrap, type Tensor } from '../tensor.js';
import { conv2dPadding, pair, type ConvActivation, type Padding2d } from './conv.js';
import { full } from './creation.js';
import { handleOf, optionalHandleOf } from './util.js';

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
  const { geometry, activation, alpha } = resolve(op, '', x, packed, options);
  const bias = optionalHandleOf(options.bias, op, be, 'bias');
  const residual = optionalHandleOf(options.residual, op, be, 'residual');
  return wrap(be.impl.conv2dNchwc(handleOf(x, op, be, 'x'), handleOf(packed, op, be, 'packed'), bias, residual, geometry, alpha, activation), be);
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
  const resolved = sets.map((set, i) => resolve(op, `sets[${i}].`, x, set.packed, set));
  // The boundary takes no biases or one per set: a set without one adds zeros.
  const zeros = sets.some((s) => s.bias != null) ? sets.map((s) => (s.bias == null ? zerosOf(s.packed) : undefined)) : [];
  try {
    const biases = zeros.map((z, i) => handleOf(z ?? sets[i].bias, op, be, `sets[${i}].bias`));
    return wrap(
      be.impl.conv2dNchwcConcat(handleOf(x, op, be, 'x'), sets.map((s, i) => handleOf(s.packed, op, be, `sets[${i}].packed`)), biases, resolved.map((r) => r.geometry), resolved.map((r) => r.activation ?? ''), resolved.map((r) => r.alpha)),
      be,
    );
  } finally {
    for (const z of zeros) z?.dispose();
  }
}

/** A zero bias for packed filters [Ob, ...]: Ob·16 channels. */
const zerosOf = (packed: Tensor): Tensor => full([(packed.shape[0] ?? 0) * NCHWC_BLOCK], 0);

/** A blocked convolution's geometry, activation and alpha; `what` prefixes option names in errors. */
function resolve(op: string, what: string, x: Tensor, packed: Tensor, options: Omit<Conv2dNchwcOptions, 'residual' | 'bias'>) {
  const stride = pair(op, `${what}stride`, options.stride, 1, 1);
  const dilation = pair(op, `${what}dilation`, options.dilation, 1, 1);
  // 'same' reads the plane (dims 2, 3 of x) and the kernel (dims 2, 3 of the packed filters).
  const padding = conv2dPadding(op, options.padding, [x.shape[0], 0, x.shape[2], x.shape[3]], [0, 0, packed.shape[2], packed.shape[3]], stride, dilation);
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
