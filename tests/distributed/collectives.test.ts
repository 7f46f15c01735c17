// MPI collectives on native tensors, run under mpirun with 2 and 4 ranks on loopback
// (workers/collectives.mjs). Expected values are computed here from the inputs' formula.
import { describe, expect, it } from 'vitest';
import { byRank, mpirun, worker } from './mpirun.js';

const input = (r: number) => Array.from({ length: 12 }, (_, i) => 10 * r + i + 0.5);
const ranks = (n: number) => Array.from({ length: n }, (_, r) => r);
const f32 = (xs: number[]) => xs.map(Math.fround);

interface Read { shape: number[]; dtype: string; data: number[] }
type Out = Record<string, Read | string | number | null> & { rank: number; worldSize: number };

describe.each([2, 4])('distributed collectives on %i ranks', (n) => {
  it('allReduce, broadcast, allGather, reduceScatter give the reference values on every rank; errors name op and rank', async () => {
    const run = await mpirun(n, worker('collectives.mjs'));
    expect(run.code, run.stderr).toBe(0);
    const outs = byRank<Out>(run);
    expect(outs.map((o) => o.rank)).toEqual(ranks(n));
    const columns = (i: number) => ranks(n).map((r) => input(r)[i]);
    const expected = {
      sum: f32(input(0).map((_, i) => columns(i).reduce((a, b) => a + b))),
      max: input(n - 1),
      min: input(0),
      intSum: input(0).map((_, i) => columns(i).map(Math.floor).reduce((a, b) => a + b)),
    };
    for (const o of outs) {
      expect(o.worldSize).toBe(n);
      const read = (k: string) => o[k] as Read;
      expect(read('sum')).toEqual({ shape: [4, 3], dtype: 'float32', data: expected.sum });
      read('mean').data.forEach((v, i) => expect(v).toBeCloseTo(expected.sum[i] / n, 5));
      expect(read('max').data).toEqual(f32(expected.max));
      expect(read('min').data).toEqual(f32(expected.min));
      expect(read('intSum')).toEqual({ shape: [4, 3], dtype: 'int32', data: expected.intSum });
      expect(read('broadcast').data).toEqual(f32(input(n - 1)));
      expect(read('allGather')).toEqual({ shape: [4 * n, 3], dtype: 'float32', data: f32(ranks(n).flatMap(input)) });
      // Rank r keeps rows [r * 4/n, (r+1) * 4/n) of the sum.
      const rows = 4 / n;
      expect(read('reduceScatter')).toEqual({ shape: [rows, 3], dtype: 'float32', data: expected.sum.slice(o.rank * rows * 3, (o.rank + 1) * rows * 3) });
      expect(read('afterErrors').data).toEqual([n, n]);

      expect(o.shapeMismatch).toMatch(new RegExp(`distributed\\.allReduce \\(rank ${o.rank} of ${n}\\).*same dtype and shape.*rank \\d has float32 \\[`));
      expect(o.badOp).toMatch(new RegExp(`distributed\\.allReduce \\(rank ${o.rank} of ${n}\\).*'median'`));
      expect(o.badDtype).toMatch(/distributed\.allReduce .*float32 and int32.*got bool/);
      expect(o.badRoot).toMatch(new RegExp(`distributed\\.broadcast .*root must be a rank in \\[0, ${n}\\), got ${n}`));
      expect(o.uneven).toMatch(new RegExp(`distributed\\.reduceScatter .*divide evenly by the world size ${n}, got shape \\[${n + 1}\\]`));
      expect(o.notTensor).toMatch(/distributed\.allGather: expected a Tensor/);
    }
  }, 180_000);
});
