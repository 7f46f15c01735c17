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

interface DdpOut { rank: number; losses: number[]; digest: string; buckets: number; launched: number[]; overlapped: boolean[]; afterDispose: string }

describe('SyncBatchNorm', () => {
  for (const ranks of [2, 4]) {
    it(`inside DDP with overlap on ${ranks} ranks: its all-reduces in backward take turns with the bucket all-reduces, bit-identical to after-backward`, async () => {
      const [overlap, after] = await Promise.all(['overlap', 'after'].map((m) => mpirun(ranks, worker('ddp-syncbn.mjs'), [m, '5'], 300_000)));
      expect(overlap.code, overlap.stderr).toBe(0);
      expect(after.code, after.stderr).toBe(0);
      const [a, b] = [byRank<DdpOut>(overlap), byRank<DdpOut>(after)];
      expect(a).toHaveLength(ranks);
      for (let r = 0; r < ranks; r++) {
        expect(a[r].losses).toEqual(b[r].losses);
        expect(a[r].digest).toBe(b[r].digest);
        expect(a[r].digest).toBe(a[0].digest);
        expect(a[r].buckets).toBeGreaterThan(1);
        // Every bucket was started by the hooks, i.e. during backward.
        expect(a[r].launched).toEqual(Array(5).fill(a[r].buckets));
        expect(a[r].afterDispose).toMatch(/^DistributedDataParallel\.syncGradients: the model's parameters were disposed/);
      }
    }, 600_000);
  }

  it('two backward passes before syncGradients (accumulation): the overlapped reducer falls back, same result', async () => {
    const [overlap, after] = await Promise.all(['overlap', 'after'].map((m) => mpirun(2, worker('ddp-syncbn.mjs'), [m, '3', '2'], 300_000)));
    expect(overlap.code, overlap.stderr).toBe(0);
    expect(after.code, after.stderr).toBe(0);
    const [a, b] = [byRank<DdpOut>(overlap), byRank<DdpOut>(after)];
    for (let r = 0; r < 2; r++) {
      expect(a[r].losses).toEqual(b[r].losses);
      expect(a[r].digest).toBe(b[r].digest);
      expect(a[r].overlapped).toEqual([false, false, false]);
    }
  }, 600_000);

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
