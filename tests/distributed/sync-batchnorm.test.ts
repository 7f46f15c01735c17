// SyncBatchNorm: N ranks x batch 64/N equal 1 process x batch 64 (outputs, input and parameter
// gradients, running statistics), and both match PyTorch's batch-norm equations computed in
// float64 (workers/sync-batchnorm.mjs); the differentiable allReduce's gradient is exact.
import { describe, expect, it } from 'vitest';
import { byRank, mpirun, worker } from './mpirun.js';

interface Out {
  rank: number;
  worldSize: number;
  convertedOk: boolean;
  diff: Record<string, number>;
  allReduceGrad: { got: number[]; expected: number[] };
}

// Parameter gradients are sums over 1,024 values per channel: float32 rounding of order 1e-5.
const TOLERANCE: Record<string, number> = { weightGrad: 1e-4, biasGrad: 1e-4 };

describe('SyncBatchNorm', () => {
  for (const ranks of [2, 4]) {
    it(`${ranks} ranks x batch ${64 / ranks} give 1 process x batch 64: outputs, gradients, running statistics`, async () => {
      const run = await mpirun(ranks, worker('sync-batchnorm.mjs'), [], 300_000);
      expect(run.code, run.stderr).toBe(0);
      const out = byRank<Out>(run);
      expect(out.map((o) => o.rank)).toEqual([...Array(ranks).keys()]);
      for (const o of out) {
        expect(o.convertedOk).toBe(true);
        expect(Object.keys(o.diff)).toHaveLength(8);
        for (const [key, d] of Object.entries(o.diff)) expect(d, `rank ${o.rank}: ${key}`).toBeLessThan(TOLERANCE[key] ?? 1e-5);
        expect(o.allReduceGrad.got).toEqual(o.allReduceGrad.expected);
      }
    }, 600_000);
  }
});
