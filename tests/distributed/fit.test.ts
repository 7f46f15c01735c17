// fit({ distributed: true }) on 2 ranks gives the per-epoch logs (loss, accuracy, validation) of
// plain fit in one process with the same global batch, and only rank 0 prints (workers/fit.mjs).
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { byRank, mpirun, worker, type MpiRun } from './mpirun.js';

interface Out { rank: number; epochs: Array<Record<string, number>>; printed: number }

describe('fit({ distributed: true })', () => {
  it('2 ranks follow one process epoch for epoch; only rank 0 prints', async () => {
    const run = await mpirun(2, worker('fit.mjs'), ['ddp'], 300_000);
    expect(run.code, run.stderr).toBe(0);
    const single = spawnSync('node', [worker('fit.mjs'), 'single'], { encoding: 'utf8', env: { ...process.env, RAYON_NUM_THREADS: '1' } });
    expect(single.status, single.stderr).toBe(0);
    const [reference] = byRank<Out>({ stdout: single.stdout } as MpiRun);
    const ranks = byRank<Out>(run);
    expect(ranks.map((o) => o.rank)).toEqual([0, 1]);
    expect(reference.epochs).toHaveLength(2);
    expect(reference.epochs[1].valAccuracy).toBeGreaterThan(0.7);
    for (const o of ranks) {
      expect(o.epochs).toHaveLength(2);
      o.epochs.forEach((logs, e) => {
        expect(Object.keys(logs).sort()).toEqual(Object.keys(reference.epochs[e]).sort());
        for (const [k, v] of Object.entries(reference.epochs[e])) expect(Math.abs(logs[k] - v), `epoch ${e + 1} ${k}: ${logs[k]} vs ${v}`).toBeLessThan(1e-5);
      });
    }
    expect(ranks[0].printed).toBeGreaterThan(0);
    expect(ranks[1].printed).toBe(0);
  }, 600_000);
});
