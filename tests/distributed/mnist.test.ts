// The full MNIST pipeline (examples/mnist-distributed.mjs: all 60,000 training digits, global
// batch 128, test accuracy over all 10,000 test digits) on 2 ranks reaches the single-process
// accuracy within 0.3 points, and a checkpoint written by the 2-rank job resumes on 1 rank
// (a different world size) where the uninterrupted runs went.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { byRank, mpirun, type MpiRun } from './mpirun.js';

interface Epoch { epoch: number; loss: number; accuracy: number }
interface Out { rank: number; worldSize: number; epochs: Epoch[] }

const EXAMPLE = fileURLToPath(new URL('../../examples/mnist-distributed.mjs', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'kiln-mnist-mpi-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** One process (a world of one, no mpirun), in `dir` so its saved model lands there. */
function single(args: string[]): Promise<MpiRun> {
  return new Promise((resolve) => {
    const child = spawn('node', [EXAMPLE, ...args], { cwd: dir, env: { ...process.env, RAYON_NUM_THREADS: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, seconds: 0 }));
  });
}

function epochs(run: MpiRun): Epoch[] {
  expect(run.code, run.stderr).toBe(0);
  const [rank0] = byRank<Out>(run);
  return rank0.epochs;
}

describe('the MNIST pipeline on MPI', () => {
  it('2 ranks reach the single-process test accuracy within 0.3 points; a 2-rank checkpoint resumes on 1 rank', async () => {
    const two = join(dir, 'two');
    const [parallel, alone] = await Promise.all([
      mpirun(2, EXAMPLE, ['--epochs', '2', '--json', '--checkpoints', two], 900_000),
      single(['--epochs', '2', '--json']),
    ]);
    const [p, s] = [epochs(parallel), epochs(alone)];
    console.log(`MNIST test accuracy by epoch: 2 ranks ${p.map((e) => e.accuracy).join(', ')}; 1 process ${s.map((e) => e.accuracy).join(', ')}`);
    expect(p.map((e) => e.epoch)).toEqual([1, 2]);
    expect(s.map((e) => e.epoch)).toEqual([1, 2]);
    // It learned (chance is 10%), and the ranks together match one process.
    expect(s[1].accuracy).toBeGreaterThan(0.95);
    for (let i = 0; i < 2; i++) expect(Math.abs(p[i].accuracy - s[i].accuracy), `epoch ${i + 1}`).toBeLessThanOrEqual(0.003);

    const resumed = epochs(await single(['--epochs', '2', '--json', '--resume', join(two, 'epoch-1.safetensors')]));
    expect(resumed.map((e) => e.epoch)).toEqual([2]);
    console.log(`epoch 2 resumed on 1 rank from the 2-rank checkpoint: loss ${resumed[0].loss}, accuracy ${resumed[0].accuracy}`);
    // Epoch 2 on 1 rank from the 2-rank checkpoint follows both uninterrupted runs.
    for (const reference of [p[1], s[1]]) {
      expect(Math.abs(resumed[0].loss - reference.loss)).toBeLessThan(1e-3);
      expect(Math.abs(resumed[0].accuracy - reference.accuracy)).toBeLessThanOrEqual(0.001);
    }
  }, 1_200_000);
});
