/** Scaled dot-product attention: one fused, tiled Rust kernel (forward and backward). */

import { backend } from '../engine.js';
import { wrap, type Tensor } from '../tensor.js';
import { handleOf } from './util.js';

/** Options of `attention`: causal masking, padding masks, scale and dropout. */
export interface AttentionOptions {
  /**
   * Causal mask: query i sees keys j <= i + (Tk - Tq), i.e. aligned bottom-right as in
   * FlashAttention (for Tq = Tk the usual j <= i; a single query over cached keys sees them all).
   */
  causal?: boolean;
  /**
   * [batch, Tk] per key: bool, where true marks padding that no query sees (as PyTorch's
   * key_padding_mask), or float32, added to the scores (0 keeps a key, -Infinity masks it; its
   * gradient is not computed, so it must not require gradients).
   */
  keyPaddingMask?: Tensor;
  /** Multiplies q·kᵀ (default 1/√D). */
  scale?: number;
  /** Probability of dropping each attention weight, for training (default 0); survivors are scaled by 1/(1 - p). */
  dropout?: number;
  /** Seed of the dropout mask (default: drawn from the global generator, see kiln.setSeed). */
  seed?: number;
}

/**
 * softmax(q·kᵀ·scale + masks)·v, fused: computed block by block with an online softmax, so memory
 * stays linear in the sequence length (the Tq×Tk weights are never stored), and differentiated in
 * one backward kernel that recomputes the blocks.
 * q [batch, heads, Tq, D], k [batch, heads, Tk, D], v [batch, heads, Tk, Dv] float32
 * -> [batch, heads, Tq, Dv]. Any view works as input without a copy (e.g. heads split from a
 * [batch, T, heads·D] projection by reshape + transpose). A query that sees no key at all (every
 * key masked) gets output 0 and gradient 0, not NaN.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): Tensor {
  const b = backend();
  const { causal = false, scale, dropout = 0, seed } = options;
  if (scale !== undefined && !Number.isFinite(scale)) throw new Error(`attention: scale must be a finite number, got ${scale}`);
  if (seed !== undefined && !(Number.isInteger(seed) && seed >= 0)) throw new Error(`attention: seed must be a non-negative integer, got ${seed}`);
  if (typeof dropout !== 'number') throw new Error(`attention: dropout must be a number in [0, 1), got ${String(dropout)}`);
  const mask = options.keyPaddingMask === undefined ? -1 : handleOf(options.keyPaddingMask, 'attention', b, 'keyPaddingMask');
  return wrap(
    b.impl.attention(handleOf(q, 'attention', b, 'q'), handleOf(k, 'attention', b, 'k'), handleOf(v, 'attention', b, 'v'), mask, {
      causal: causal === true,
      scale: scale ?? NaN,
      dropout,
      seed: seed ?? -1,
    }),
    b,
  );
}
