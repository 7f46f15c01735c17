/**
 * Weight-only quantization kernels (crates/kiln-core/src/ops/quant.rs). Weights are stored the way
 * nn.Linear stores them, [outFeatures, inFeatures]:
 *
 * - int8: per output channel, symmetric: q int8 [O, I] in [-127, 127], scales float32 [O],
 *   w ≈ q · scale of its row.
 * - int4: per block of `block` (default 32) consecutive weights of a row, symmetric: q in [-8, 7],
 *   two per byte (element 2j in the low nibble of byte j, 2j+1 in the high one), packed int8
 *   [O, ceil(I/2)], scales float32 [O, ceil(I/block)].
 *
 * A conv filter [inChannels/groups, kh, kw] is quantized as one row of inChannels/groups·kh·kw.
 *
 * The linear and conv kernels compute directly from the packed weights (a tile of at most 64
 * rows is expanded at a time, never the whole float32 weight). They are inference-only: with
 * gradients enabled, an input that requires gradients is an error (run under `noGrad`).
 */

import { backend } from '../engine.js';
import type { ConvGeometry } from '../backends/backend.js';
import { wrap, type Tensor } from '../tensor.js';
import { conv2dPadding, pair as sizePair, type Conv2dOptions } from './conv.js';
import { handleOf, optionalHandleOf } from './util.js';

/** The int4 block length unless chosen otherwise. */
export const INT4_BLOCK = 32;

/** A quantized weight: the integers (int8 tensor; packed for int4) and their float32 scales. */
export interface QuantizedWeight {
  q: Tensor;
  scales: Tensor;
}

function positiveInt(op: string, what: string, n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new Error(`${op}: ${what} must be a positive integer, got ${n}`);
  return n;
}

function pair(handles: ArrayLike<number>, b: ReturnType<typeof backend>): QuantizedWeight {
  return { q: wrap(handles[0], b), scales: wrap(handles[1], b) };
}

/** Symmetric int8 per output channel. w: float32 [O, I] -> { q: int8 [O, I], scales: float32 [O] } */
export function quantizeInt8(w: Tensor): QuantizedWeight {
  const b = backend();
  return pair(b.impl.quantizeInt8(handleOf(w, 'quantizeInt8', b, 'w')), b);
}

/**
 * Symmetric int4 per block of `block` weights of a row, packed two per byte.
 * w: float32 [O, I] -> { q: int8 [O, ceil(I/2)], scales: float32 [O, ceil(I/block)] }
 */
export function quantizeInt4(w: Tensor, block = INT4_BLOCK): QuantizedWeight {
  const b = backend();
  return pair(b.impl.quantizeInt4(handleOf(w, 'quantizeInt4', b, 'w'), positiveInt('quantizeInt4', 'block', block)), b);
}

/** The float32 weight an int8 quantization stands for. q int8 [O, I], scales [O] -> [O, I] */
export function dequantizeInt8(q: Tensor, scales: Tensor): Tensor {
  const b = backend();
  return wrap(b.impl.dequantizeInt8(handleOf(q, 'dequantizeInt8', b, 'q'), handleOf(scales, 'dequantizeInt8', b, 'scales')), b);
}

/** The float32 weight an int4 quantization stands for. packed [O, ceil(I/2)], scales [O, ceil(I/block)] -> [O, inFeatures] */
export function dequantizeInt4(packed: Tensor, scales: Tensor, inFeatures: number, block = INT4_BLOCK): Tensor {
  const b = backend();
  const op = 'dequantizeInt4';
  if (!Number.isInteger(inFeatures) || inFeatures < 0) throw new Error(`${op}: inFeatures must be a non-negative integer, got ${inFeatures}`);
  return wrap(b.impl.dequantizeInt4(handleOf(packed, op, b, 'packed'), handleOf(scales, op, b, 'scales'), inFeatures, positiveInt(op, 'block', block)), b);
}

/** x·Wᵀ + b with int8 weights. x float32 [..., I], q int8 [O, I], scales [O], bias [O] -> [..., O] */
export function linearQ8(x: Tensor, q: Tensor, scales: Tensor, bias?: Tensor | null): Tensor {
  const b = backend();
  const op = 'linearQ8';
  const bh = optionalHandleOf(bias, op, b, 'bias');
  return wrap(b.impl.linearQ8(handleOf(x, op, b, 'x'), handleOf(q, op, b, 'q'), handleOf(scales, op, b, 'scales'), bh), b);
}

/**
 * x·Wᵀ + b with int8 weights AND int8 activations (W8A8): each row of x is quantized per call to
 * int8 with scale max|row| / 127, the products are summed exactly in i32 (AVX-512 VNNI, AVX2 or
 * scalar, chosen at run time; `KILN_INT8_PATH=scalar|avx2` forces a lesser path), and
 * out = acc · rowScale · scales[o] + bias[o]. Faster than `linearQ8`; each row also carries its
 * own rounding (at most half of max|row| / 127 per element). A row holding NaN or ±inf gives NaN.
 * x float32 [..., I], q int8 [O, I], scales [O], bias [O] -> [..., O]. Inference-only.
 */
export function linearW8A8(x: Tensor, q: Tensor, scales: Tensor, bias?: Tensor | null): Tensor {
  const b = backend();
  const op = 'linearW8A8';
  const bh = optionalHandleOf(bias, op, b, 'bias');
  return wrap(b.impl.linearW8A8(handleOf(x, op, b, 'x'), handleOf(q, op, b, 'q'), handleOf(scales, op, b, 'scales'), bh), b);
}

/**
 * x·Wᵀ + b with int4 weights. x float32 [..., I], packed int8 [O, ceil(I/2)],
 * scales [O, ceil(I/block)], bias [O] -> [..., O]
 */
export function linearQ4(x: Tensor, packed: Tensor, scales: Tensor, bias?: Tensor | null, block = INT4_BLOCK): Tensor {
  const b = backend();
  const op = 'linearQ4';
  const bh = optionalHandleOf(bias, op, b, 'bias');
  return wrap(b.impl.linearQ4(handleOf(x, op, b, 'x'), handleOf(packed, op, b, 'packed'), handleOf(scales, op, b, 'scales'), bh, positiveInt(op, 'block', block)), b);
}

/** What the quantized convolutions pass to the kernel after x, the weights and the scales. */
function convArgs(op: string, x: Tensor, kernel: number | [number, number], options: Conv2dOptions): { bias: number; kernel: [number, number]; geometry: ConvGeometry } {
  const b = backend();
  const [kh, kw] = sizePair(op, 'kernel', kernel, 1, 1);
  const stride = sizePair(op, 'stride', options.stride, 1, 1);
  const dilation = sizePair(op, 'dilation', options.dilation, 1, 1);
  const groups = positiveInt(op, 'groups', options.groups ?? 1);
  const padding = conv2dPadding(op, options.padding, x.shape, [0, 0, kh, kw], stride, dilation);
  const bias = optionalHandleOf(options.bias, op, b, 'bias');
  return { bias, kernel: [kh, kw], geometry: { stride, padding, dilation, groups } };
}

/**
 * conv2d (as `kiln.conv2d`, same options) with int8 filters: each of the O filters
 * [inChannels/groups, kh, kw] is a row of q. x float32 [batch, inChannels, height, width],
 * q int8 [O, inChannels/groups·kh·kw], scales [O], kernel kh or [kh, kw] ->
 * [batch, O, outHeight, outWidth]. Inference-only.
 */
export function conv2dQ8(x: Tensor, q: Tensor, scales: Tensor, kernel: number | [number, number], options: Conv2dOptions = {}): Tensor {
  const b = backend();
  const op = 'conv2dQ8';
  const c = convArgs(op, x, kernel, options);
  return wrap(b.impl.conv2dQ8(handleOf(x, op, b, 'x'), handleOf(q, op, b, 'q'), handleOf(scales, op, b, 'scales'), c.bias, c.kernel, c.geometry), b);
}

/**
 * conv2dQ8 with int8 activations too (W8A8, as `linearW8A8`): each input image is quantized to
 * int8 with one scale, max|image| / 127 (each pixel once), and the filters multiply its patches
 * in i32. Same arguments and shapes as `conv2dQ8`:
 * x float32 [batch, inChannels, height, width], q int8 [O, inChannels/groups·kh·kw], scales [O]
 * -> [batch, O, outHeight, outWidth]. Inference-only.
 */
export function conv2dW8A8(x: Tensor, q: Tensor, scales: Tensor, kernel: number | [number, number], options: Conv2dOptions = {}): Tensor {
  const b = backend();
  const op = 'conv2dW8A8';
  const c = convArgs(op, x, kernel, options);
  return wrap(b.impl.conv2dW8A8(handleOf(x, op, b, 'x'), handleOf(q, op, b, 'q'), handleOf(scales, op, b, 'scales'), c.bias, c.kernel, c.geometry), b);
}

/**
 * conv2d with int4 filters in blocks of `block` (default 32) along each row. packed int8
 * [O, ceil(patch/2)], scales [O, ceil(patch/block)] with patch = inChannels/groups·kh·kw;
 * otherwise as `conv2dQ8`. Inference-only.
 */
export function conv2dQ4(x: Tensor, packed: Tensor, scales: Tensor, kernel: number | [number, number], options: Conv2dOptions & { block?: number } = {}): Tensor {
  const b = backend();
  const op = 'conv2dQ4';
  const block = positiveInt(op, 'block', options.block ?? INT4_BLOCK);
  const c = convArgs(op, x, kernel, options);
  return wrap(b.impl.conv2dQ4(handleOf(x, op, b, 'x'), handleOf(packed, op, b, 'packed'), handleOf(scales, op, b, 'scales'), c.bias, c.kernel, c.geometry, block), b);
}
