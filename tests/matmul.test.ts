/**
 * matmul: 2-D, transposes, batched with broadcast batch dims, vectors, K = 0, non-contiguous
 * operands, and the multi-threaded GEMM path. References: reference.matmul (float64) and tfjs.
 */
import { expect, it } from 'vitest';
import * as kiln from '../ts/index.js';
import type { Tensor } from '../ts/index.js';
import { forEachBackend } from './backends.js';
import { T, assertClose, expectTensor, randND, read } from './helpers.js';
import * as ref from './reference.js';
import { tf, tfEval, tfT } from './tf.js';

/** float32 GEMM against a float64 reference: entries are sums of K products of values in [-1, 1]. */
const tolFor = (k: number) => ({ atol: 2e-6 * Math.max(1, k), rtol: 1e-5 });

forEachBackend(() => {
  it('2-D products of many sizes match the reference and tfjs', async () => {
    let seed = 1;
    for (const [m, k, n] of [
      [1, 1, 1],
      [1, 7, 1],
      [3, 4, 5],
      [7, 13, 5],
      [16, 16, 16],
      [17, 33, 9],
      [64, 64, 64],
      [2, 100, 3],
    ]) {
      const a = randND([m, k], seed++);
      const b = randND([k, n], seed++);
      const want = ref.matmul(a, b);
      const y = kiln.matmul(T(a), T(b));
      await expectTensor(y, { shape: [m, n], dtype: 'float32', values: want, ...tolFor(k) }, `[${m},${k}]@[${k},${n}]`);
      const wantTf = tfEval(() => tf.matMul(tfT(a), tfT(b)));
      assertClose(await read(y), wantTf.data, tolFor(k), `[${m},${k}]@[${k},${n}] vs tfjs`);
    }
  });

  it('all four transpose combinations match tfjs', async () => {
    const [m, k, n] = [5, 7, 3];
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        const a = randND(ta ? [k, m] : [m, k], 10);
        const b = randND(tb ? [n, k] : [k, n], 11);
        const want = tfEval(() => tf.matMul(tfT(a), tfT(b), ta, tb));
        const y = kiln.matmul(T(a), T(b), ta, tb);
        await expectTensor(y, { shape: [m, n], values: want.data, ...tolFor(k) }, `transposeA=${ta} transposeB=${tb}`);
        await expectTensor(y, { values: ref.matmul(a, b, ta, tb), ...tolFor(k) }, `transposeA=${ta} transposeB=${tb} vs reference`);
        // method form forwards the flags
        assertClose(await read(T(a).matmul(T(b), ta, tb)), await read(y), { atol: 0, rtol: 0 }, 'method form');
      }
    }
  });

  it('batched products with broadcast batch dimensions', async () => {
    const cases: Array<[number[], number[], number[], boolean?, boolean?]> = [
      [[2, 3, 4, 5], [5, 6], [2, 3, 4, 6]],
      [[2, 1, 4, 5], [3, 5, 6], [2, 3, 4, 6]],
      [[3, 4, 5], [3, 5, 6], [3, 4, 6]],
      [[1, 4, 5], [3, 5, 6], [3, 4, 6]],
      [[3, 4, 5], [1, 5, 6], [3, 4, 6]],
      [[4, 5], [2, 3, 5, 6], [2, 3, 4, 6]],
      [[2, 1, 3, 4], [1, 5, 4, 2], [2, 5, 3, 2]],
      [[2, 3, 5, 4], [5, 6], [2, 3, 4, 6], true, false],
      [[2, 3, 4, 5], [6, 5], [2, 3, 4, 6], false, true],
      [[2, 1, 5, 4], [3, 6, 5], [2, 3, 4, 6], true, true],
      [[6, 1, 2], [2, 3], [6, 1, 3]],
      [[40, 8, 8], [40, 8, 8], [40, 8, 8]],
    ];
    let seed = 20;
    for (const [sa, sb, out, ta = false, tb = false] of cases) {
      const a = randND(sa, seed++);
      const b = randND(sb, seed++);
      const want = ref.matmul(a, b, ta, tb);
      expect(want.shape).toEqual(out);
      const label = `[${sa}]${ta ? 'ᵀ' : ''} @ [${sb}]${tb ? 'ᵀ' : ''}`;
      const k = ta ? sa[sa.length - 2] : sa[sa.length - 1];
      await expectTensor(kiln.matmul(T(a), T(b), ta, tb), { shape: out, values: want, ...tolFor(k) }, label);
      // tfjs's cpu batchMatMul only broadcasts when one side has no batch dims or both have the same
      // batch shape (other cases return wrongly sized data), so compare with tfjs there only.
      const sameBatch = JSON.stringify(sa.slice(0, -2)) === JSON.stringify(sb.slice(0, -2));
      if (sa.length === 2 || sb.length === 2 || sameBatch) {
        const wantTf = tfEval(() => tf.matMul(tfT(a), tfT(b), ta, tb));
        expect(wantTf.shape).toEqual(out);
        assertClose(await read(kiln.matmul(T(a), T(b), ta, tb)), wantTf.data, tolFor(k), `${label} vs tfjs`);
      }
    }
  });

  it('vector operands are promoted and their dimension dropped (NumPy rules)', async () => {
    const cases: Array<[number[], number[], number[]]> = [
      [[5], [5, 3], [3]],
      [[4, 5], [5], [4]],
      [[5], [5], []],
      [[5], [2, 5, 3], [2, 3]],
      [[2, 4, 5], [5], [2, 4]],
      [[1], [1, 4], [4]],
    ];
    let seed = 40;
    for (const [sa, sb, out] of cases) {
      const a = randND(sa, seed++);
      const b = randND(sb, seed++);
      const want = ref.matmul(a, b);
      expect(want.shape).toEqual(out);
      await expectTensor(kiln.matmul(T(a), T(b)), { shape: out, values: want, ...tolFor(5) }, `[${sa}] @ [${sb}]`);
    }
  });

  it('K = 0 gives zeros; M = 0 or N = 0 gives empty results', async () => {
    await expectTensor(kiln.matmul(kiln.zeros([3, 0]), kiln.zeros([0, 4])), { shape: [3, 4], values: new Array(12).fill(0), exact: true }, 'K=0');
    // non-zero fill must not leak through when K = 0
    const r = kiln.matmul(kiln.ones([2, 3, 0]), kiln.ones([0, 5]));
    await expectTensor(r, { shape: [2, 3, 5], values: new Array(30).fill(0), exact: true }, 'batched K=0');
    await expectTensor(kiln.matmul(kiln.zeros([0]), kiln.zeros([0])), { shape: [], values: [0], exact: true }, 'empty dot');
    await expectTensor(kiln.matmul(kiln.ones([0, 3]), kiln.ones([3, 4])), { shape: [0, 4], values: [] }, 'M=0');
    await expectTensor(kiln.matmul(kiln.ones([2, 3]), kiln.ones([3, 0])), { shape: [2, 0], values: [] }, 'N=0');
    await expectTensor(kiln.matmul(kiln.ones([0, 2, 3]), kiln.ones([3, 4])), { shape: [0, 2, 4], values: [] }, 'batch=0');
  });

  it('non-contiguous operands (transposed, sliced, expanded, permuted views) match contiguous copies', async () => {
    const x = randND([6, 8], 50);
    const y = randND([8, 6], 51);
    const z = randND([3, 6, 8], 52);
    const X = T(x);
    const Y = T(y);
    const Z = T(z);
    const cases: Array<[string, Tensor, ref.ND, Tensor, ref.ND]> = [
      ['transposed @ transposed', Y.transpose(), ref.transpose(y), X.transpose(), ref.transpose(x)],
      ['sliced @ sliced', X.slice([1, 2], [4, 5]), ref.slice(x, [1, 2], [4, 5]), Y.slice([3, 1], [5, 2]), ref.slice(y, [3, 1], [5, 2])],
      ['row-expanded @ matrix', X.slice([2, 0], [1, 8]).expand([5, 8]), ref.broadcastTo(ref.slice(x, [2, 0], [1, 8]), [5, 8]), Y, y],
      ['matrix @ column-expanded', X, x, Y.slice([0, 4], [8, 1]).expand([8, 3]), ref.broadcastTo(ref.slice(y, [0, 4], [8, 1]), [8, 3])],
      ['batch-expanded rhs', Z, z, Y.expand([3, 8, 6]), ref.broadcastTo(y, [3, 8, 6])],
      ['batch-expanded lhs', X.expand([4, 6, 8]), ref.broadcastTo(x, [4, 6, 8]), Y, y],
      ['permuted batch dims', Z.permute([1, 0, 2]).slice([0, 0, 0], [2, 3, 8]), ref.slice(ref.permute(z, [1, 0, 2]), [0, 0, 0], [2, 3, 8]), Y, y],
      ['sliced batch rows', Z.slice([0, 1, 0], [3, 4, 8]), ref.slice(z, [0, 1, 0], [3, 4, 8]), Y, y],
      ['sliced batch cols (K) ', Z.slice([0, 0, 2], [3, 6, 5]), ref.slice(z, [0, 0, 2], [3, 6, 5]), Y.slice([1, 0], [5, 6]), ref.slice(y, [1, 0], [5, 6])],
      ['strided vectors', X.slice([0, 3], [6, 1]).squeeze([1]), ref.slice(x, [0, 3], [6, 1]), X.transpose().slice([3, 0], [1, 6]).squeeze(), ref.slice(x, [0, 3], [6, 1])],
      ['column vector view', Y.transpose().slice([0, 0], [1, 8]).squeeze([0]), ref.slice(ref.transpose(y), [0, 0], [1, 8]), Y, y],
      // Found by the fuzzer: rows of one element whose size-1 dims carry arbitrary strides (a
      // permuted [3, 1, 8, 1] view) were stacked into one GEMM with the wrong row stride.
      ['size-1 rows with odd strides', Z.slice([0, 0, 0], [3, 1, 8]).reshape([3, 1, 8, 1]).permute([0, 1, 3, 2]), ref.slice(z, [0, 0, 0], [3, 1, 8]), Y, y],
    ];
    for (const [label, a, ar, b, br] of cases) {
      const arr = { shape: [...a.shape], data: ar.data };
      const brr = { shape: [...b.shape], data: br.data };
      const got = kiln.matmul(a, b);
      assertClose(await read(got), await read(kiln.matmul(a.contiguous(), b.contiguous())), { atol: 1e-6, rtol: 1e-6 }, `${label} vs contiguous`);
      await expectTensor(got, { values: ref.matmul(arr, brr), ...tolFor(8) }, `${label} vs reference`);
    }
    // transposes of views combined with the transpose flags
    const s = X.slice([1, 0], [5, 8]);
    await expectTensor(kiln.matmul(s, Y.slice([0, 1], [8, 5]), true, true), {
      values: ref.matmul(ref.slice(x, [1, 0], [5, 8]), ref.slice(y, [0, 1], [8, 5]), true, true),
      ...tolFor(5),
    }, 'sliced with both flags');
  });

  it('identity and known products', async () => {
    const a = randND([5, 5], 60);
    await expectTensor(kiln.matmul(T(a), kiln.eye(5)), { values: a, atol: 0, rtol: 0 }, 'A @ I');
    await expectTensor(kiln.matmul(kiln.eye(5), T(a)), { values: a, atol: 0, rtol: 0 }, 'I @ A');
    const y = kiln.matmul(kiln.tensor([[1, 2], [3, 4]]), kiln.tensor([[5, 6], [7, 8]]));
    expect(await y.array()).toEqual([[19, 22], [43, 50]]);
  });

  it('large products (multi-threaded GEMM) match the reference', async () => {
    const a = randND([128, 100], 70);
    const b = randND([100, 96], 71);
    await expectTensor(kiln.matmul(T(a), T(b)), { values: ref.matmul(a, b), ...tolFor(100) }, '128x100x96');
    const c = randND([100, 128], 72);
    await expectTensor(kiln.matmul(T(c), T(b), true, false), { values: ref.matmul(c, b, true, false), ...tolFor(100) }, 'transposed 128x100x96');
    const d = randND([4, 48, 64], 73);
    const e = randND([64, 40], 74);
    await expectTensor(kiln.matmul(T(d), T(e)), { values: ref.matmul(d, e), ...tolFor(64) }, 'stacked batches');
  });

  it('NaN and inf propagate through the product', async () => {
    const y = await read(kiln.matmul(kiln.tensor([[1, NaN], [1, 1]]), kiln.tensor([[1, 0], [1, 1]])));
    expect(Number.isNaN(y[0]) && Number.isNaN(y[1])).toBe(true);
    expect(y.slice(2)).toEqual([2, 1]);
    const z = await read(kiln.matmul(kiln.tensor([[Infinity, 1]]), kiln.tensor([[1], [1]])));
    expect(z).toEqual([Infinity]);
  });
});
