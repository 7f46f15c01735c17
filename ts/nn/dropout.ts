/**
 * Dropout: in training, zeroes each element with probability p and scales the survivors by
 * 1/(1 − p) (inverted dropout), so the expected value is unchanged and eval needs no rescaling.
 */

import type { Tensor } from '../tensor.js';
import { randu } from '../ops/creation.js';
import { Module } from './module.js';

export class Dropout extends Module {
  /** p: drop probability in [0, 1). Masks come from the global generator (kiln.setSeed). */
  constructor(readonly p = 0.5) {
    super();
    if (!(typeof p === 'number' && p >= 0 && p < 1)) throw new Error(`Dropout: p must be in [0, 1), got ${p}`);
  }

  /** Training: x·mask/(1 − p) with mask ~ Bernoulli(1 − p); eval (or p = 0): x itself. [...] -> [...] */
  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return x;
    const keep = 1 - this.p;
    // One fused mask: (u < keep) as 0/1, scaled once, then a single multiply that autograd sees.
    const mask = randu([...x.shape]).less(keep).cast('float32').mul(1 / keep);
    return x.mul(mask);
  }
}
