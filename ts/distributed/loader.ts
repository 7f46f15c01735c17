/**
 * DistributedDataLoader: a DataLoader that gives each rank its own shard of every epoch, like
 * PyTorch's DistributedSampler. All ranks shuffle with one shared seed, so they agree on the
 * epoch's order; rank r then takes positions r, r + N, r + 2N, ... of it. Batch b of rank r
 * thus holds samples of the global batch b of a single-process loader with batchSize * N: the
 * ranks together see exactly what one process would, which is what makes data-parallel
 * training follow single-process training step for step.
 *
 * The order is padded (with its first samples) to a multiple of the world size, so every rank
 * runs the same number of batches: a rank with one batch fewer would leave the others waiting
 * in a collective.
 */

import { DataLoader, type DataLoaderOptions } from '../data/loader.js';
import type { Dataset } from '../data/dataset.js';
import { tensor } from '../ops/creation.js';
import { broadcast, rank, worldSize } from './collectives.js';

export class DistributedDataLoader extends DataLoader {
  /** This process's rank and the world size when the loader was made. */
  readonly rank: number;
  readonly worldSize: number;

  /**
   * `options.batchSize` is the per-rank batch (the global batch is batchSize * worldSize).
   * Without a seed, rank 0 draws one and broadcasts it, so the ranks still agree.
   */
  constructor(dataset: Dataset, options: DataLoaderOptions = {}) {
    const r = rank();
    const n = worldSize();
    let seed = options.seed;
    if (seed === undefined && options.shuffle) {
      const mine = tensor([Math.floor(Math.random() * 2 ** 31)], [1], 'int32');
      const shared = broadcast(mine, 0);
      seed = shared.dataSync()[0];
      mine.dispose();
      shared.dispose();
    }
    super(dataset, { ...options, seed });
    this.rank = r;
    this.worldSize = n;
  }

  /** Samples this rank visits per epoch (the dataset padded to a multiple of worldSize, divided by it). */
  get shardLength(): number {
    return Math.ceil(this.dataset.length / this.worldSize);
  }

  /** Batches per epoch on this rank (the same on every rank). */
  override get length(): number {
    const n = this.shardLength;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** This rank's share of epoch `epoch`'s order. -> Int32Array [shardLength] */
  override orderFor(epoch: number): Int32Array {
    const global = super.orderFor(epoch);
    const shard = new Int32Array(this.shardLength);
    for (let i = 0; i < shard.length; i++) shard[i] = global[(i * this.worldSize + this.rank) % global.length];
    return shard;
  }
}
