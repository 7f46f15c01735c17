// Data parallelism follows single-process training step for step: 2 ranks x batch 64 (DDP,
// DistributedDataLoader) against 1 process x batch 128 (plain model and DataLoader), the MNIST
// MLP for 50 Adam steps from the same seed (workers/ddp-mnist.mjs). The overlapped all-reduce
// (buckets launched from gradient-ready hooks during backward) equals the after-backward one bit
// for bit.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { byRank, mpirun, worker, type MpiRun } from './mpirun.js';

interface Sync { overlapped: boolean; launchedInBackward: number }
interface Out { rank: number; worldSize: number; losses: number[]; fingerprint: number[][]; digest: string; buckets: number; syncs: Sync[] }
const STEPS = 50;

function single(): Out {
  const r = spawnSync('node', [worker('ddp-mnist.mjs'), 'single', String(STEPS)], { encoding: 'utf8', env: { ...process.env, RAYON_NUM_THREADS: '1' } });
  expect(r.status, r.stderr).toBe(0);
  return byRank<Out>({ stdout: r.stdout } as MpiRun)[0];
}

describe('DistributedDataParallel', () => {
  it('2 ranks x batch 64 give the losses of 1 process x batch 128 within 1e-5 over 50 steps, with identical replicas', async () => {
    const [reference, run] = await Promise.all([Promise.resolve().then(single), mpirun(2, worker('ddp-mnist.mjs'), ['ddp', String(STEPS)], 300_000)]);
    expect(run.code, run.stderr).toBe(0);
    const ranks = byRank<Out>(run);
    expect(ranks.map((o) => o.rank)).toEqual([0, 1]);
    expect(reference.losses).toHaveLength(STEPS);
    // Training really happened: the loss fell well below ln(10) ~ 2.30.
    expect(reference.losses[STEPS - 1]).toBeLessThan(1.0);
    for (const o of ranks) {
      expect(o.losses).toHaveLength(STEPS);
      o.losses.forEach((l, i) => expect(Math.abs(l - reference.losses[i]), `step ${i}: ${l} vs ${reference.losses[i]}`).toBeLessThan(1e-5));
      expect(o.buckets).toBe(2);
      // Replicas agree with each other exactly (same averaged gradients, same updates).
      expect(o.fingerprint).toEqual(ranks[0].fingerprint);
      expect(o.digest).toBe(ranks[0].digest);
      // Every step overlapped: both buckets were launched by the hooks before syncGradients.
      expect(o.syncs).toHaveLength(STEPS);
      for (const s of o.syncs) expect(s).toEqual({ overlapped: true, launchedInBackward: 2 });
    }
  }, 600_000);

  it('the overlapped all-reduce gives bit-identical training to the all-reduce after backward', async () => {
    const steps = 20;
    const [overlapped, after] = await Promise.all([
      mpirun(2, worker('ddp-mnist.mjs'), ['ddp', String(steps)], 300_000),
      mpirun(2, worker('ddp-mnist.mjs'), ['ddp-after-backward', String(steps)], 300_000),
    ]);
    expect(overlapped.code, overlapped.stderr).toBe(0);
    expect(after.code, after.stderr).toBe(0);
    const [a, b] = [byRank<Out>(overlapped), byRank<Out>(after)];
    expect(a).toHaveLength(2);
    expect(b).toHaveLength(2);
    for (let r = 0; r < 2; r++) {
      expect(a[r].losses).toEqual(b[r].losses);
      expect(a[r].digest).toBe(b[r].digest);
      expect(a[r].syncs.every((s) => s.overlapped)).toBe(true);
      expect(b[r].syncs.every((s) => !s.overlapped)).toBe(true);
    }
  }, 600_000);
});
