/**
 * Layer normalization as one fused Rust kernel (crates/kiln-core/src/ops/layer_norm.rs): per row
 * of the normalized dims, the mean and variance, normalization, scale and shift in two reads of
 * the row and one write, where the composed form makes ten passes over the whole tensor. The
 * backward pass is composed from ops. nn.LayerNorm and the ONNX importer's LayerNormalization
 * (and the pattern exporters spell it as) run on it.
 */

import { backend } from '../engine.js';
import { wrap, type Tensor } from '../tensor.js';
import { handleOf, optionalHandleOf } from './util.js';

/** Options of `layerNorm`. */
export interface LayerNormOptions {
  /** Scale γ with the normalized shape (x's dims from `axis` on); none: 1. */
  weight?: Tensor | null;
  /** Shift β with the normalized shape; none: 0. */
  bias?: Tensor | null;
  /** First normalized dim; negative counts from the end (default -1: the last dim only). */
  axis?: number;
  /** Added to the variance before the square root (default 1e-5). */
  eps?: number;
}

/**
 * y = (x − mean)/√(var + eps)·weight + bias, mean and (biased) variance over the dims from
 * `axis` to the last, as PyTorch's `F.layer_norm` and ONNX's LayerNormalization.
 * x: float32 [..., ...normalized] -> same shape.
 */
export function layerNorm(x: Tensor, options: LayerNormOptions = {}): Tensor {
  const op = 'layerNorm';
  const b = backend();
  const { axis = -1, eps = 1e-5 } = options;
  return wrap(b.impl.layerNorm(handleOf(x, op, b), optionalHandleOf(options.weight, op, b, 'weight'), optionalHandleOf(options.bias, op, b, 'bias'), axis, eps), b);
}
