/**
 * BatchNorm1d (Ioffe & Szegedy), with PyTorch's conventions: training normalizes with the batch
 * statistics (biased variance) and folds them into running statistics with
 * running ← (1 − momentum)·running + momentum·batch, using the unbiased variance for runningVar;
 * eval normalizes with the running statistics.
 */

import type { Tensor } from '../tensor.js';
import { noGrad } from '../autograd.js';
import { full } from '../ops/creation.js';
import { assign } from '../autograd.js';
import { Module } from './module.js';

export interface BatchNormOptions {
  /** Weight of the new batch in the running statistics (default 0.1). */
  momentum?: number;
  /** Added to the variance before the square root (default 1e-5). */
  eps?: number;
  /** Learn a per-feature scale (weight, init 1) and shift (bias, init 0) (default true). */
  affine?: boolean;
}

export class BatchNorm1d extends Module {
  /** [features], or null without affine. */
  readonly weight: Tensor | null;
  /** [features], or null without affine. */
  readonly bias: Tensor | null;
  /** Buffer [features], starts at 0. */
  readonly runningMean: Tensor;
  /** Buffer [features], starts at 1. */
  readonly runningVar: Tensor;
  readonly momentum: number;
  readonly eps: number;

  /** Normalizes numFeatures channels (dim 1 of the input). */
  constructor(readonly numFeatures: number, options: BatchNormOptions = {}) {
    super();
    if (!Number.isInteger(numFeatures) || numFeatures < 1) throw new Error(`BatchNorm1d: numFeatures must be a positive integer, got ${numFeatures}`);
    this.momentum = options.momentum ?? 0.1;
    this.eps = options.eps ?? 1e-5;
    if (!(this.momentum >= 0 && this.momentum <= 1)) throw new Error(`BatchNorm1d: momentum must be in [0, 1], got ${this.momentum}`);
    if (!(this.eps > 0)) throw new Error(`BatchNorm1d: eps must be > 0, got ${this.eps}`);
    const affine = options.affine ?? true;
    this.weight = affine ? this.registerParameter(full([numFeatures], 1)) : null;
    this.bias = affine ? this.registerParameter(full([numFeatures], 0)) : null;
    this.runningMean = this.registerBuffer(full([numFeatures], 0));
    this.runningVar = this.registerBuffer(full([numFeatures], 1));
  }

  /** [batch, features] -> same, or [batch, features, length] -> same (statistics over batch and length). */
  forward(x: Tensor): Tensor {
    const shape = x.shape;
    const c = this.numFeatures;
    if ((shape.length !== 2 && shape.length !== 3) || shape[1] !== c) {
      throw new Error(`BatchNorm1d(${c}): expected input [batch, ${c}] or [batch, ${c}, length], got ${x.dtype} [${shape.join(', ')}]`);
    }
    const axes = shape.length === 2 ? [0] : [0, 2];
    // Per-feature vectors broadcast against [batch, C] as [C] and against [batch, C, L] as [C, 1].
    const perFeature = shape.length === 2 ? [c] : [c, 1];
    let normalized: Tensor;
    if (this.training) {
      const n = shape.length === 2 ? shape[0] : shape[0] * shape[2];
      if (n < 2) throw new Error(`BatchNorm1d(${c}): training needs more than one value per feature, got input [${shape.join(', ')}]`);
      const mean = x.mean(axes, true);
      const variance = x.variance(axes, true);
      normalized = x.sub(mean).mul(variance.add(this.eps).rsqrt());
      noGrad(() => {
        // running ← (1 - momentum)·running + momentum·batch, in place (PyTorch's convention;
        // the running variance uses the unbiased batch variance).
        const m = this.momentum;
        assign(this.runningMean, this.runningMean.mul(1 - m).add(mean.reshape([c]).mul(m)));
        assign(this.runningVar, this.runningVar.mul(1 - m).add(variance.reshape([c]).mul((m * n) / (n - 1))));
      });
    } else {
      normalized = x.sub(this.runningMean.reshape(perFeature)).mul(this.runningVar.add(this.eps).rsqrt().reshape(perFeature));
    }
    if (this.weight === null || this.bias === null) return normalized;
    return normalized.mul(this.weight.reshape(perFeature)).add(this.bias.reshape(perFeature));
  }
}
