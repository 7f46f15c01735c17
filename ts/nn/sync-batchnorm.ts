/**
 * SyncBatchNorm (PyTorch's torch.nn.SyncBatchNorm): batch normalization whose training statistics
 * are those of the *global* batch, all ranks' shards together, so N ranks x batch B normalize as
 * one process x batch N*B would. The statistics are reduced with two differentiable all-reduces
 * (the per-channel sum with the count, then the sum of squared deviations from the global mean:
 * two passes, as exact as the single-process kernel), and backward all-reduces the gradients of
 * those sums in turn (distributed.allReduce's backward), which is PyTorch's reduction of
 * sum(dy) and sum(dy * (x - mean)). In eval mode, or in a world of one, it is the fused
 * batchNorm of BatchNorm1d/2d with the running statistics.
 */

import type { Tensor } from '../tensor.js';
import { noGrad, assign } from '../autograd.js';
import { tidy } from '../engine.js';
import { full } from '../ops/creation.js';
import { add, mul, rsqrt, square, sub, div } from '../ops/elementwise.js';
import { sum } from '../ops/reduce.js';
import { concat, reshape, slice } from '../ops/shape.js';
import { allReduce, isInitialized, worldSize } from '../distributed/collectives.js';
import { BatchNorm, BatchNorm1d, BatchNorm2d } from './batchnorm.js';
import { Module, type AnyModule } from './module.js';

/**
 * [batch, channels, ...] -> same (statistics per channel over every rank's batch and positions).
 * `new SyncBatchNorm(numFeatures, { momentum, eps, affine })`, as BatchNorm2d.
 */
export class SyncBatchNorm extends BatchNorm {
  protected readonly unit = 'channel';

  protected checkInput(x: Tensor): void {
    const c = this.numFeatures;
    if (x.rank < 2 || x.shape[1] !== c) {
      throw new Error(`SyncBatchNorm(${c}): expected input [batch, ${c}, ...], got ${x.dtype} [${x.shape.join(', ')}]`);
    }
  }

  /** Training on several ranks: global batch statistics; otherwise BatchNorm's forward. [batch, channels, ...] -> same */
  override forward(x: Tensor): Tensor {
    if (!this.training || !isInitialized() || worldSize() === 1) return super.forward(x);
    this.checkInput(x);
    return tidy(() => this.globalBatchNorm(x));
  }

  private globalBatchNorm(x: Tensor): Tensor {
    const c = this.numFeatures;
    const axes = [0, ...Array.from({ length: x.rank - 2 }, (_, i) => i + 2)];
    const perChannel = [1, c, ...Array<number>(x.rank - 2).fill(1)];
    // Pass 1: every rank's per-channel sum and value count, in one all-reduce.
    const totals = allReduce(concat([sum(x, axes), full([1], x.size / c)]), 'sum');
    const count = totals.dataSync()[c];
    if (count < 2) {
      throw new Error(`SyncBatchNorm(${c}): training needs more than one value per channel over all ranks, got input [${x.shape.join(', ')}] on ${worldSize()} ranks`);
    }
    const mean = div(slice(totals, [0], [c]), count);
    const centered = sub(x, reshape(mean, perChannel));
    // Pass 2: the sum of squared deviations from the global mean (biased variance, as BatchNorm).
    const variance = div(allReduce(sum(square(centered), axes), 'sum'), count);
    let y = mul(centered, reshape(rsqrt(add(variance, this.eps)), perChannel));
    if (this.weight && this.bias) y = add(mul(y, reshape(this.weight, perChannel)), reshape(this.bias, perChannel));
    noGrad(() => {
      const m = this.momentum;
      assign(this.runningMean, add(mul(this.runningMean, 1 - m), mul(mean, m)));
      // The running variance is the unbiased one, as in BatchNorm1d/2d and PyTorch.
      assign(this.runningVar, add(mul(this.runningVar, 1 - m), mul(variance, (m * count) / (count - 1))));
    });
    this.numBatchesTracked++;
    return y;
  }

  /**
   * Replaces every BatchNorm1d and BatchNorm2d in `model` (the model itself included) with a
   * SyncBatchNorm holding the same weight, bias, running statistics, momentum and eps
   * (PyTorch's convert_sync_batchnorm). Returns the converted model: `model` itself unless it is
   * a BatchNorm layer.
   */
  static convert<M extends AnyModule>(model: M): M | SyncBatchNorm {
    if (!(model instanceof Module)) throw new Error(`convertSyncBatchNorm: expected an nn.Module, got ${typeof model}`);
    if (isPlainBatchNorm(model)) return toSync(model);
    for (const [, m] of model.namedModules()) {
      const props = m as unknown as Record<string, unknown>;
      for (const [key, value] of Object.entries(props)) {
        if (isPlainBatchNorm(value)) props[key] = toSync(value);
        else if (Array.isArray(value)) value.forEach((v, i) => isPlainBatchNorm(v) && (value[i] = toSync(v)));
      }
    }
    return model;
  }
}

function isPlainBatchNorm(m: unknown): m is BatchNorm1d | BatchNorm2d {
  return m instanceof BatchNorm1d || m instanceof BatchNorm2d;
}

function toSync(bn: BatchNorm1d | BatchNorm2d): SyncBatchNorm {
  const sync = new SyncBatchNorm(bn.numFeatures, { momentum: bn.momentum, eps: bn.eps, affine: bn.weight !== null });
  noGrad(() => sync.loadStateDict(bn.stateDict()));
  sync.numBatchesTracked = bn.numBatchesTracked;
  sync.training = bn.training;
  bn.dispose();
  return sync;
}

/** `SyncBatchNorm.convert(model)`: every BatchNorm1d/2d of `model` becomes a SyncBatchNorm. */
export const convertSyncBatchNorm = <M extends AnyModule>(model: M): M | SyncBatchNorm => SyncBatchNorm.convert(model);
