/**
 * Message-passing ops (spmm, segmentReduce) on every backend: against a dense adjacency matmul
 * and plain loops, against tfjs's unsortedSegmentSum, gradient checks, and errors for bad edge
 * lists that name the op and the shapes.
 */
import { describe, expect, it } from 'vitest';
import * as kiln from '../ts/index.js';
import { forEachBackend } from './backends.js';
import { expectTensor, expectThrows, randIntND, randND, read, readOf, T, Ti } from './helpers.js';
import { gradCheck, separated, uniform } from './gradcheck.js';
import { nd, type ND } from './reference.js';
import { tf, tfEval, tfT, tfTi } from './tf.js';

/** A[d, s] = Σ weight of the edges s -> d, as a dense [numOut, numIn] reference. */
function denseAdjacency(src: ND, dst: ND, weight: ND | null, numIn: number, numOut: number): ND {
  const data = new Array<number>(numOut * numIn).fill(0);
  src.data.forEach((s, e) => (data[dst.data[e] * numIn + s] += weight === null ? 1 : weight.data[e]));
  return nd([numOut, numIn], data);
}

function segmentLoop(values: ND, ids: ND, segments: number, reducer: 'sum' | 'mean' | 'max'): number[] {
  const f = values.data.length / values.shape[0];
  const out = new Array<number>(segments * f).fill(0);
  const count = new Array<number>(segments).fill(0);
  ids.data.forEach((s, r) => {
    for (let j = 0; j < f; j++) {
      const v = values.data[r * f + j];
      out[s * f + j] = reducer === 'max' ? (count[s] === 0 ? v : Math.max(out[s * f + j], v)) : out[s * f + j] + v;
    }
    count[s]++;
  });
  if (reducer === 'mean') return out.map((v, i) => v / Math.max(1, count[Math.floor(i / f)]));
  return out;
}

forEachBackend(() => {
  describe('spmm', () => {
    it('equals a dense adjacency matmul, weighted and unweighted, square and rectangular', async () => {
      for (const [numIn, numOut, edges, f, seed] of [[6, 6, 15, 3, 1], [9, 4, 30, 5, 2], [200, 150, 3000, 20, 3]]) {
        const src = randIntND([edges], seed, 0, numIn);
        const dst = randIntND([edges], seed + 10, 0, numOut);
        const w = randND([edges], seed + 20);
        const x = randND([numIn, f], seed + 30);
        for (const weight of [w, null]) {
          const [got, want] = kiln.tidy(() => [
            kiln.spmm(T(x), Ti(src), Ti(dst), { weight: weight === null ? undefined : T(weight), numOut }),
            kiln.matmul(T(denseAdjacency(src, dst, weight, numIn, numOut)), T(x)),
          ]);
          await expectTensor(got, { shape: [numOut, f], values: await want.data(), atol: 1e-5, rtol: 1e-4 });
          kiln.dispose([got, want]);
        }
      }
    });

    it('keeps trailing feature dims and handles no edges', async () => {
      const x = uniform([3, 2, 2], 4);
      const out = kiln.spmm(T(x), Ti(nd([2], [2, 2])), Ti(nd([2], [0, 1])));
      await expectTensor(out, { shape: [3, 2, 2], values: [...x.data.slice(8), ...x.data.slice(8), 0, 0, 0, 0] });
      const empty = kiln.spmm(T(x), Ti(nd([0], [])), Ti(nd([0], [])), { numOut: 2 });
      await expectTensor(empty, { shape: [2, 2, 2], values: new Array(8).fill(0) });
      kiln.dispose([out, empty]);
    });

    it('gradients for x and for the edge weights match finite differences', async () => {
      // Repeated edges, a self loop, and a node with no in-edges.
      const src = Ti(nd([7], [0, 1, 1, 2, 4, 0, 2]));
      const dst = Ti(nd([7], [1, 0, 2, 2, 0, 1, 4]));
      await gradCheck('spmm x, weight', [uniform([5, 3], 5), uniform([7], 6)], ([x, w]) => kiln.spmm(x, src, dst, { weight: w }));
      await gradCheck('spmm unweighted, rectangular', [uniform([5, 2], 7)], ([x]) => kiln.spmm(x, src, dst, { numOut: 6 }));
      await gradCheck('spmm weight only', [uniform([5, 3], 8), uniform([7], 9)], ([x, w]) => kiln.spmm(x, src, dst, { weight: w }), { wrt: [1] });
      kiln.dispose([src, dst]);
    });

    it('rejects out-of-range nodes, mismatched lists and wrong dtypes, naming op and shapes', () => {
      kiln.tidy(() => {
        const x = kiln.zeros([3, 2]);
        const i = (v: number[]) => kiln.tensor(Int32Array.from(v), [v.length]);
        expectThrows(() => kiln.spmm(x, i([0, 3]), i([0, 1])), 'spmm', 'src index 3', 'out of range [0, 3)', '[3, 2]');
        expectThrows(() => kiln.spmm(x, i([0, 1]), i([0, 5]), { numOut: 4 }), 'spmm', 'dst index 5', 'numOut is 4');
        expectThrows(() => kiln.spmm(x, i([0, -1]), i([0, 1])), 'spmm', 'src index -1');
        expectThrows(() => kiln.spmm(x, i([0, 1]), i([0])), 'spmm', 'dst must be int32 [2]', '[1]');
        expectThrows(() => kiln.spmm(x, kiln.tensor([0, 1]), i([0, 1])), 'spmm', 'src must be int32 [2]', 'float32');
        expectThrows(() => kiln.spmm(x, i([0, 1]), i([0, 1]), { weight: kiln.ones([3]) }), 'spmm', 'weight must be float32 [2]', '[3]');
        expectThrows(() => kiln.spmm(x, i([0]), i([0]), { numOut: -1 }), 'spmm', 'numOut must be a non-negative integer');
      });
    });
  });

  describe('segmentReduce', () => {
    it('sum, mean and max equal loops (an empty segment gives 0); sum equals tfjs unsortedSegmentSum', async () => {
      const values = randND([500, 6], 11);
      const ids = randIntND([500], 12, 1, 30); // segment 0 stays empty
      for (const reducer of ['sum', 'mean', 'max'] as const) {
        const out = kiln.segmentReduce(T(values), Ti(ids), 30, reducer);
        await expectTensor(out, { shape: [30, 6], values: segmentLoop(values, ids, 30, reducer), atol: 1e-5, rtol: 1e-5 }, reducer);
        out.dispose();
      }
      const want = tfEval(() => tf.unsortedSegmentSum(tfT(values), tfTi(ids) as tf.Tensor1D, 30));
      const got = kiln.segmentReduce(T(values), Ti(ids), 30);
      await expectTensor(got, { values: want, atol: 1e-5, rtol: 1e-5 }, 'tfjs');
      got.dispose();
    });

    it('gradients match finite differences', async () => {
      const ids = Ti(nd([7], [1, 0, 2, 2, 0, 1, 4]));
      await gradCheck('segment sum', [uniform([7, 3], 13)], ([v]) => kiln.segmentReduce(v, ids, 6, 'sum'));
      await gradCheck('segment mean', [uniform([7, 3], 14)], ([v]) => kiln.segmentReduce(v, ids, 6, 'mean'));
      await gradCheck('segment max', [separated([7, 3], 0.03)], ([v]) => kiln.segmentReduce(v, ids, 6, 'max'));
      ids.dispose();
    });

    it('rejects bad ids and reducers', () => {
      kiln.tidy(() => {
        const v = kiln.zeros([3, 2]);
        expectThrows(() => kiln.segmentReduce(v, kiln.tensor(Int32Array.from([0, 1, 4]), [3]), 4), 'segmentReduce', 'index 4', 'numSegments is 4', '[3, 2]');
        expectThrows(() => kiln.segmentReduce(v, kiln.tensor(Int32Array.from([0, 1]), [2]), 4), 'segmentReduce', 'segmentIds must be int32 [3]');
        expectThrows(() => kiln.segmentReduce(v, kiln.tensor(Int32Array.from([0, 1, 1]), [3]), 4, 'min' as 'max'), 'segmentReduce', "reducer must be 'sum', 'mean' or 'max'");
      });
    });
  });

  describe('SparseMatrix', () => {
    const dense = randND([6, 5], 30).data.map((v, i) => (i % 3 === 0 ? v : 0)); // a third non-zero
    it('fromDense keeps the non-zeros; matmul equals the dense product', async () => {
      const m = kiln.SparseMatrix.fromDense(dense, [6, 5]);
      expect(m.nnz).toBe(dense.filter((v) => v !== 0).length);
      const [got, want] = kiln.tidy(() => {
        const w = T(randND([5, 3], 31));
        return [m.matmul(w), kiln.tensor(Float32Array.from(dense), [6, 5]).matmul(w)];
      });
      await expectTensor(got, { shape: [6, 3], values: await want.data(), atol: 1e-6 });
      kiln.dispose([got, want]);
      expectThrows(() => kiln.tidy(() => m.matmul(kiln.zeros([4, 3]))), 'SparseMatrix.matmul', '[6, 5] x [4, 3]', 'needs 5 rows');
      m.dispose();
      expectThrows(() => new kiln.SparseMatrix(Ti(nd([2], [0, 1])), Ti(nd([1], [0])), T(nd([2], [1, 2])), [2, 2]), 'SparseMatrix', 'cols must be int32 [2]');
    });

    it('gradients reach the dense matrix and the stored values', async () => {
      const rows = Ti(nd([4], [0, 2, 2, 1]));
      const cols = Ti(nd([4], [1, 0, 1, 1]));
      await gradCheck('sparse x dense', [uniform([4], 32), uniform([2, 3], 33)], ([values, w]) => new kiln.SparseMatrix(rows, cols, values, [3, 2]).matmul(w));
      kiln.dispose([rows, cols]);
    });

    it('dropout drops stored values at rate p, scales survivors, and leaves the matrix intact', async () => {
      const m = kiln.SparseMatrix.fromDense(Float32Array.from({ length: 4000 }, (_, i) => (i % 2 ? 1 : 0)), [40, 100]);
      kiln.setSeed(3);
      const d = await readOf(() => m.dropout(0.25).values);
      const kept = d.filter((v) => v !== 0);
      expect(kept.every((v) => Math.abs(v - 1 / 0.75) < 1e-6)).toBe(true);
      expect(kept.length / d.length).toBeGreaterThan(0.72);
      expect(kept.length / d.length).toBeLessThan(0.78);
      expect((await read(m.values)).every((v) => v === 1), 'the original values survive the view and the tidy').toBe(true);
      m.dispose();
    });
  });

  it('frees everything it makes (forward and backward, in a loop)', () => {
    const before = kiln.memory().numTensors;
    for (let i = 0; i < 20; i++) {
      kiln.tidy(() => {
        const x = kiln.randn([10, 4]).setRequiresGrad();
        const src = kiln.tensor(Int32Array.from([0, 1, 2, 3]), [4]);
        const y = kiln.spmm(x, src, src).add(kiln.segmentReduce(x, kiln.tensor(Int32Array.from(new Array(10).fill(0).map((_, j) => j % 10)), [10]), 10, 'max'));
        y.sum().backward();
      });
    }
    expect(kiln.memory().numTensors).toBe(before);
  });
});
