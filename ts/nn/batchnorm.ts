/**
 * BatchNorm1d and BatchNorm2d (Ioffe & Szegedy), with PyTorch's conventions: training normalizes
 * with the batch statistics (biased variance) and folds them into running statistics with
 * running ← (1 − momentum)·running + momentum·batch, using the unbiased variance for runningVar;
 * eval normalizes with the running statistics. Both run the fused batchNorm kernel
 * (ts/ops/batch-norm.ts), which also updates the running statistics in place.
 */

import type { Tensor } from '../tensor.js';
import { full } from '../ops/creation.js';
import { batchNorm } from '../ops/batch-norm.js';
import { layerArgs } from './layer-args.js';
import { Module } from './module.js';

/** Options of `nn.BatchNorm1d` and `nn.BatchNorm2d`. */
export interface BatchNormOptions {
  /** Weight of the new batch in the running statistics (default 0.1). */
  momentum?: number;
  /** Added to the variance before the square root (default 1e-5). */
  eps?: number;
  /** Learn a per-feature scale (weight, init 1) and shift (bias, init 0) (default true). */
  affine?: boolean;
}

/** What BatchNorm1d, BatchNorm2d and SyncBatchNorm share: parameters, buffers and the forward pass. */
export abstract class BatchNorm extends Module {
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
  /**
   * Training-mode forward passes so far: PyTorch's `num_batches_tracked`, kept so that PyTorch
   * checkpoints round-trip (io/pytorch.ts). Not part of Kiln's own state dict.
   */
  numBatchesTracked = 0;

  constructor(readonly numFeatures: number, options: BatchNormOptions = {}) {
    super();
    const args = layerArgs(this.constructor.name);
    args.positiveInt('numFeatures', numFeatures);
    const o = args.options(options);
    this.momentum = args.inRange('momentum', o.momentum, 0.1, 0, 1);
    this.eps = args.positive('eps', o.eps, 1e-5);
    const affine = args.flag('affine', o.affine, true);
    [this.weight, this.bias, this.runningMean, this.runningVar] = args.build(() => [
      affine ? this.registerParameter(full([numFeatures], 1)) : null,
      affine ? this.registerParameter(full([numFeatures], 0)) : null,
      this.registerBuffer(full([numFeatures], 0)),
      this.registerBuffer(full([numFeatures], 1)),
    ]);
  }

  /** Throws (naming the layer and the shapes it takes) unless `x` is an input this layer accepts. */
  protected abstract checkInput(x: Tensor): void;

  /** Word for the normalized axis in messages ('feature', 'channel'). */
  protected abstract readonly unit: string;

  forward(x: Tensor): Tensor {
    this.checkInput(x);
    if (this.training && x.size / this.numFeatures < 2) {
      throw new Error(`${this.constructor.name}(${this.numFeatures}): training needs more than one value per ${this.unit}, got input [${x.shape.join(', ')}]`);
    }
    if (this.training) this.numBatchesTracked++;
    return batchNorm(x, {
      weight: this.weight,
      bias: this.bias,
      runningMean: this.runningMean,
      runningVar: this.runningVar,
      training: this.training,
      momentum: this.momentum,
      eps: this.eps,
    });
  }
}

/** [batch, features] -> same, or [batch, features, length] -> same (statistics over batch and length). */
export class BatchNorm1d extends BatchNorm {
  protected readonly unit = 'feature';

  /** Normalizes numFeatures channels (dim 1 of the input). */
  constructor(numFeatures: number, options: BatchNormOptions = {}) {
    super(numFeatures, options);
  }

  protected checkInput(x: Tensor): void {
    const c = this.numFeatures;
    if ((x.rank !== 2 && x.rank !== 3) || x.shape[1] !== c) {
      throw new Error(`BatchNorm1d(${c}): expected input [batch, ${c}] or [batch, ${c}, length], got ${x.dtype} [${x.shape.join(', ')}]`);
    }
  }
}

/** [batch, channels, height, width] -> same (statistics per channel over batch, height and width). */
export class BatchNorm2d extends BatchNorm {
  protected readonly unit = 'channel';

  /** Normalizes numFeatures channels of images (dim 1 of [batch, channels, height, width]). */
  constructor(numFeatures: number, options: BatchNormOptions = {}) {
    super(numFeatures, options);
  }

  protected checkInput(x: Tensor): void {
    const c = this.numFeatures;
    if (x.rank !== 4 || x.shape[1] !== c) {
      throw new Error(`BatchNorm2d(${c}): expected input [batch, ${c}, height, width], got ${x.dtype} [${x.shape.join(', ')}]`);
    }
  }
}
