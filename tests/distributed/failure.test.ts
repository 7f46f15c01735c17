// A rank that dies, throws or hangs ends the whole job with an error within a bounded time,
// never a hang (workers/failure.mjs, 2 ranks on loopback).
import { describe, expect, it } from 'vitest';
import { mpirun, worker } from './mpirun.js';

// Far below the 120 s the stuck rank sleeps and the 180 s after which mpirun() kills the job.
const BOUND_S = 60;

describe('distributed failure', () => {
  it.each([
    ['kill', /signal 9|Killed/i],
    ['throw', /rank 1 failed on purpose/],
    ['stuck', /distributed\.allReduce \(rank 0 of 2\) waited more than 2 s/],
  ])('a rank that fails (%s) ends the job with an error on the others', async (mode, message) => {
    const run = await mpirun(2, worker('failure.mjs'), [mode as string], 180_000);
    expect(run.signal, 'mpirun itself had to be killed: the job hung').toBeNull();
    expect(run.code).not.toBe(0);
    expect(run.stdout).not.toContain('finished');
    expect(run.stderr).toMatch(message as RegExp);
    expect(run.seconds).toBeLessThan(BOUND_S);
  }, 240_000);
});
