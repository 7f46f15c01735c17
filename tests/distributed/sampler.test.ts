// DistributedDataLoader shards each epoch of a plain DataLoader's order across 3 ranks: rank r
// gets positions r, r + 3, ... of the same seeded order, padded to equal length, and all ranks
// run the same number of batches; without a seed, the ranks still agree (workers/sampler.mjs).
import { describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { byRank, mpirun, worker } from './mpirun.js';

interface Out { rank: number; seeded: number[][]; unseeded: number[]; batches: number }

describe('DistributedDataLoader', () => {
  it('3 ranks split each epoch of the seeded order, padded, with equal batch counts', async () => {
    const run = await mpirun(3, worker('sampler.mjs'));
    expect(run.code, run.stderr).toBe(0);
    const ranks = byRank<Out>(run);
    expect(ranks.map((o) => o.rank)).toEqual([0, 1, 2]);
    // The reference order: a plain DataLoader with the same seed (10 samples).
    const dataset = new kiln.data.TensorDataset(new Float32Array(10), [1], new Int32Array(10));
    const plain = new kiln.data.DataLoader(dataset, { batchSize: 6, shuffle: true, seed: 1 });
    for (const epoch of [0, 1]) {
      const global = Array.from(plain.orderFor(epoch));
      for (const o of ranks) {
        // ceil(10 / 3) = 4 samples per rank; position 9 of the padded order wraps to global[0].
        expect(o.seeded[epoch]).toEqual([0, 1, 2, 3].map((i) => global[(i * 3 + o.rank) % 10]));
        expect(o.batches).toBe(2);
      }
      expect(new Set(ranks.flatMap((o) => o.seeded[epoch])).size).toBe(10);
    }
    expect(ranks[0].seeded[0]).not.toEqual(ranks[0].seeded[1]);
    // Unseeded: rank 0's random seed is shared, so together the ranks still cover every sample.
    expect(new Set(ranks.flatMap((o) => o.unseeded)).size).toBe(10);
  }, 180_000);
});
