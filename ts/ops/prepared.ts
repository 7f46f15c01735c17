/**
 * Ops resolved once for repeated calls on inputs of the same dims, dtypes and backend: the ONNX
 * importer's compiled runs (ts/onnx/replay.ts) call them on every run of a model. Nothing is
 * checked again (the kernels still check shapes: a wrong call is an error, not a wrong result),
 * and the results carry their shape and dtype from the second call on (`resultsOf`), which saves
 * the two boundary calls per result that would ask for them. Not part of the public API: the
 * public ops (linear.ts, attention.ts, ...) check their arguments.
 */

import type { Backend } from '../backends/backend.js';
import { backend } from '../engine.js';
import type { Tensor } from '../tensor.js';
import type { AttentionOptions } from './attention.js';
import type { LayerNormOptions } from './layer-norm.js';
import { resultsOf } from './util.js';

/** `linear` (x · weightᵀ + bias + residual, with an activation). */
export function linearFor(options: { activation?: string; alpha?: number } = {}): (x: Tensor, weight: Tensor, bias?: Tensor, residual?: Tensor) => Tensor {
  const b = backend();
  const result = resultsOf(b);
  return (x, weight, bias, residual) => result(b.impl.linear(x.handle, weight.handle, bias?.handle ?? -1, residual?.handle ?? -1, options.activation, options.alpha ?? 0));
}

/** `attention` without dropout, with an optional key padding mask. */
export function attentionFor(options: Pick<AttentionOptions, 'causal' | 'scale'> = {}): (q: Tensor, k: Tensor, v: Tensor, keyPaddingMask?: Tensor) => Tensor {
  const b = backend();
  const settings = { causal: options.causal === true, scale: options.scale ?? NaN, dropout: 0, seed: -1 };
  const result = resultsOf(b);
  return (q, k, v, mask) => result(b.impl.attention(q.handle, k.handle, v.handle, mask?.handle ?? -1, settings));
}

/** `layerNorm` with an optional scale and shift. */
export function layerNormFor(options: Omit<LayerNormOptions, 'weight' | 'bias'> = {}): (x: Tensor, weight?: Tensor, bias?: Tensor) => Tensor {
  const b = backend();
  const { axis = -1, eps = 1e-5 } = options;
  const result = resultsOf(b);
  return (x, weight, bias) => result(b.impl.layerNorm(x.handle, weight?.handle ?? -1, bias?.handle ?? -1, axis, eps));
}

/** `softmax` (or `logSoftmax` when `log`) along `axis`. */
export function softmaxFor(axis: number, log = false): (x: Tensor) => Tensor {
  const b = backend();
  const result = resultsOf(b);
  return (x) => result(b.impl.softmax(x.handle, axis, log));
}

/** A view op (reshape, permute, split, or several with the ones between freed): `view` maps x's handle to the results' handles. */
export function viewsFor(view: (impl: Backend, x: number) => number[]): (x: Tensor) => Tensor[] {
  const b = backend();
  const result = resultsOf(b);
  return (x) => view(b.impl, x.handle).map((h, i) => result(h, i));
}
