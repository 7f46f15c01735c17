/**
 * Binary elementwise ops with NumPy broadcasting, comparisons (bool masks), where, and plain
 * numbers as operands. Reference: float64 loops in reference.ts, and tfjs.
 */
import { expect, it } from 'vitest';
import * as kiln from '../ts/index.js';
import type { Tensor, TensorLike } from '../ts/index.js';
import { forEachBackend } from './backends.js';
import { T, Tb, assertClose, expectTensor, expectThrows, randND, randIntND, read } from './helpers.js';
import * as ref from './reference.js';
import { tf, tfEval, tfT } from './tf.js';

interface BinaryCase {
  name: string;
  fn: (a: TensorLike, b: TensorLike) => Tensor;
  ref: (a: number, b: number) => number;
  tf: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor;
  /** Inputs for `a` and `b` (pow needs a positive base for random tests). */
  domainA?: [number, number];
  domainB?: [number, number];
}

const ARITH: BinaryCase[] = [
  { name: 'add', fn: kiln.add, ref: (a, b) => a + b, tf: tf.add },
  { name: 'sub', fn: kiln.sub, ref: (a, b) => a - b, tf: tf.sub },
  { name: 'mul', fn: kiln.mul, ref: (a, b) => a * b, tf: tf.mul },
  { name: 'div', fn: kiln.div, ref: (a, b) => a / b, tf: tf.div, domainB: [0.1, 3] },
  { name: 'pow', fn: kiln.pow, ref: Math.pow, tf: tf.pow, domainA: [0.01, 4], domainB: [-3, 3] },
  { name: 'maximum', fn: kiln.maximum, ref: ref.maximum, tf: tf.maximum },
  { name: 'minimum', fn: kiln.minimum, ref: ref.minimum, tf: tf.minimum },
];

const COMPARE: BinaryCase[] = [
  { name: 'equal', fn: kiln.equal, ref: (a, b) => +(a === b), tf: tf.equal },
  { name: 'notEqual', fn: kiln.notEqual, ref: (a, b) => +(a !== b), tf: tf.notEqual },
  { name: 'less', fn: kiln.less, ref: (a, b) => +(a < b), tf: tf.less },
  { name: 'lessEqual', fn: kiln.lessEqual, ref: (a, b) => +(a <= b), tf: tf.lessEqual },
  { name: 'greater', fn: kiln.greater, ref: (a, b) => +(a > b), tf: tf.greater },
  { name: 'greaterEqual', fn: kiln.greaterEqual, ref: (a, b) => +(a >= b), tf: tf.greaterEqual },
];

/** Shape pairs that broadcast, including scalars, size-1 and size-0 dimensions. */
const BROADCASTS: Array<[number[], number[]]> = [
  [[2, 3], [2, 3]],
  [[], []],
  [[], [3]],
  [[4, 2], []],
  [[3, 1], [1, 4]],
  [[2, 1, 3], [4, 1]],
  [[1], [5]],
  [[5, 1, 4], [1, 3, 1]],
  [[1, 1], [1]],
  [[2, 3, 1, 2], [3, 5, 1]],
  [[0, 3], [3]],
  [[0, 3], [1, 3]],
  [[2, 0], [1]],
  [[3], [0, 1]],
];

const TOL = { atol: 1e-6, rtol: 1e-6 };

/** Comparison inputs drawn from a few integers so that ties (==) actually happen. */
const smallInts = (shape: number[], seed: number) => randIntND(shape, seed, -2, 3);

forEachBackend(() => {
  for (const c of ARITH) {
    it(`${c.name}: broadcasting shapes match the reference`, async () => {
      let seed = 1;
      for (const [sa, sb] of BROADCASTS) {
        const a = randND(sa, seed++, ...(c.domainA ?? [-2, 2]));
        const b = randND(sb, seed++, ...(c.domainB ?? [-2, 2]));
        const want = ref.zip(a, b, c.ref);
        const y = c.fn(T(a), T(b));
        await expectTensor(y, { shape: want.shape, dtype: 'float32', values: want, ...TOL }, `${c.name} [${sa}] x [${sb}]`);
      }
    });

    it(`${c.name}: matches tfjs`, async () => {
      const a = randND([2, 1, 5], 31, ...(c.domainA ?? [-3, 3]));
      const b = randND([4, 1], 32, ...(c.domainB ?? [-3, 3]));
      const want = tfEval(() => c.tf(tfT(a), tfT(b)));
      await expectTensor(c.fn(T(a), T(b)), { shape: want.shape, values: want.data, atol: 1e-6, rtol: 1e-5 }, c.name);
    });
  }

  for (const c of COMPARE) {
    it(`${c.name}: bool masks with broadcasting, against the reference and tfjs`, async () => {
      let seed = 50;
      for (const [sa, sb] of BROADCASTS) {
        const a = smallInts(sa, seed++);
        const b = smallInts(sb, seed++);
        const want = ref.zip(a, b, c.ref);
        const y = c.fn(T(a), T(b));
        await expectTensor(y, { shape: want.shape, dtype: 'bool', values: want, exact: true }, `${c.name} [${sa}] x [${sb}]`);
        expect((await y.data()) instanceof Uint8Array, 'bool data is a Uint8Array').toBe(true);
      }
      const a = smallInts([3, 4], 7);
      const b = smallInts([4], 8);
      const want = tfEval(() => c.tf(tfT(a), tfT(b)));
      await expectTensor(c.fn(T(a), T(b)), { shape: want.shape, values: want.data, exact: true }, `${c.name} vs tfjs`);
    });
  }

  it('comparisons with NaN, infinities and signed zeros follow IEEE', async () => {
    const a = kiln.tensor([NaN, NaN, 1, 0, -0, Infinity, -Infinity, Infinity]);
    const b = kiln.tensor([NaN, 1, NaN, -0, 0, Infinity, -Infinity, 1]);
    expect(await read(kiln.equal(a, b))).toEqual([0, 0, 0, 1, 1, 1, 1, 0]);
    expect(await read(kiln.notEqual(a, b))).toEqual([1, 1, 1, 0, 0, 0, 0, 1]);
    expect(await read(kiln.less(a, b))).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(await read(kiln.lessEqual(a, b))).toEqual([0, 0, 0, 1, 1, 1, 1, 0]);
    expect(await read(kiln.greater(a, b))).toEqual([0, 0, 0, 0, 0, 0, 0, 1]);
    expect(await read(kiln.greaterEqual(a, b))).toEqual([0, 0, 0, 1, 1, 1, 1, 1]);
  });

  it('maximum and minimum propagate NaN from either side', async () => {
    const a = kiln.tensor([NaN, 1, NaN, -Infinity, 2]);
    const b = kiln.tensor([1, NaN, NaN, 5, Infinity]);
    assertClose(await read(kiln.maximum(a, b)), [NaN, NaN, NaN, 5, Infinity], { atol: 0, rtol: 0 }, 'maximum');
    assertClose(await read(kiln.minimum(a, b)), [NaN, NaN, NaN, -Infinity, 2], { atol: 0, rtol: 0 }, 'minimum');
  });

  it('division and pow edge cases follow IEEE / Math.pow', async () => {
    const d = await read(kiln.div(kiln.tensor([1, -1, 0, 1, Infinity]), kiln.tensor([0, 0, 0, Infinity, Infinity])));
    assertClose(d, [Infinity, -Infinity, NaN, 0, NaN], { atol: 0, rtol: 0 }, 'div');
    const base = [0, -8, 2, 2, NaN, -2, -2, 0, 1, 4];
    const expo = [0, 1 / 3, -Infinity, Infinity, 0, 3, 2, -1, NaN, 0.5];
    const p = await read(kiln.pow(kiln.tensor(base), kiln.tensor(expo)));
    // Math.pow(1, NaN) is NaN in JS but 1 in C/IEEE powf; accept either for that one entry.
    const want = base.map((x, i) => Math.pow(Math.fround(x), Math.fround(expo[i])));
    const idx1NaN = 8;
    expect(Number.isNaN(p[idx1NaN]) || p[idx1NaN] === 1).toBe(true);
    p[idx1NaN] = want[idx1NaN];
    assertClose(p, want, { atol: 0, rtol: 1e-6 }, 'pow', { inputs: base });
  });

  it('pow with negative bases and integer exponents, and vs tfjs on a grid', async () => {
    const a = randND([40], 3, -3, 3);
    const b = randIntND([40], 4, -3, 4);
    await expectTensor(kiln.pow(T(a), T(b)), { values: ref.zip(a, b, Math.pow), atol: 1e-6, rtol: 1e-5 }, 'pow int exponents');
  });

  it('accepts plain numbers on either side (as float32 scalars)', async () => {
    const x = randND([3, 4], 9);
    const X = T(x);
    const cases: Array<[string, Tensor, (v: number) => number]> = [
      ['add(x, 2)', kiln.add(X, 2), (v) => v + 2],
      ['add(2, x)', kiln.add(2, X), (v) => 2 + v],
      ['sub(3, x)', kiln.sub(3, X), (v) => 3 - v],
      ['x.mul(0.5)', X.mul(0.5), (v) => v * 0.5],
      ['div(1, x)', kiln.div(1, X), (v) => 1 / v],
      ['x.pow(2)', X.pow(2), (v) => v * v],
      ['maximum(x, 0)', kiln.maximum(X, 0), (v) => Math.max(v, 0)],
      ['x.greater(0)', X.greater(0), (v) => +(v > 0)],
      ['lessEqual(0, x)', kiln.lessEqual(0, X), (v) => +(0 <= v)],
    ];
    for (const [label, y, f] of cases) {
      await expectTensor(y, { shape: [3, 4], values: x.data.map(f), ...TOL }, label);
    }
    // a non-float32-representable number is rounded to float32 once, as a float32 scalar operand
    await expectTensor(kiln.add(kiln.zeros([2]), 0.1), { values: [Math.fround(0.1), Math.fround(0.1)], atol: 0, rtol: 0 }, 'add 0.1');
    await expectTensor(kiln.add(kiln.scalar(1), 2), { shape: [], values: [3] }, 'scalar + number');
  });

  it('where(cond, a, b) broadcasts all three operands', async () => {
    const cases: Array<[number[], number[], number[]]> = [
      [[3, 4], [3, 4], [3, 4]],
      [[3, 1], [1, 4], []],
      [[2, 1, 1], [3, 1], [4]],
      [[4], [3, 1], [2, 1, 1]],
      [[], [2, 3], [3]],
      [[0, 3], [3], []],
    ];
    let seed = 70;
    for (const [sc, sa, sb] of cases) {
      const c = randIntND(sc, seed++, 0, 2);
      const a = randND(sa, seed++);
      const b = randND(sb, seed++);
      const want = ref.where(c, a, b);
      const y = kiln.where(Tb(c), T(a), T(b));
      await expectTensor(y, { shape: want.shape, dtype: 'float32', values: want, exact: true }, `where [${sc}] [${sa}] [${sb}]`);
    }
  });

  it('where takes numbers, the method form, and masks from comparisons; matches tfjs', async () => {
    const x = randND([4, 5], 80);
    const X = T(x);
    const mask = X.greater(0);
    await expectTensor(kiln.where(mask, X, 0), { values: x.data.map((v) => (v > 0 ? v : 0)), exact: true }, 'where(x>0, x, 0)');
    await expectTensor(kiln.where(mask, 1, -1), { values: x.data.map((v) => (v > 0 ? 1 : -1)), exact: true }, 'where(m, 1, -1)');
    await expectTensor(mask.where(X, X.neg()), { values: x.data.map(Math.abs), exact: true }, 'mask.where');
    const b = randND([4, 5], 81);
    const want = tfEval(() => tf.where(tf.greater(tfT(x), 0), tfT(x), tfT(b)));
    await expectTensor(kiln.where(mask, X, T(b)), { values: want.data, exact: true }, 'where vs tfjs');
  });

  it('incompatible shapes throw, naming the op and both shapes', () => {
    for (const c of [...ARITH, ...COMPARE]) {
      expectThrows(() => c.fn(kiln.zeros([2, 3]), kiln.zeros([4])), c.name, '[2, 3]', '[4]');
    }
    expectThrows(() => kiln.add(kiln.zeros([3, 2]), kiln.zeros([2, 1, 4])), 'add', '[3, 2]', '[2, 1, 4]');
    expectThrows(() => kiln.where(kiln.zeros([3], 'bool'), kiln.zeros([4]), kiln.zeros([4])), 'where', '[3]', '[4]');
    expectThrows(() => kiln.add(kiln.zeros([0]), kiln.zeros([2])), 'add', '[0]', '[2]');
  });

  it('operands that are transposed, sliced or expanded views give the same results as contiguous copies', async () => {
    const a = randND([5, 6], 90);
    const b = randND([6, 5], 91);
    const A = T(a);
    const B = T(b);
    const views: Array<[string, Tensor, ref.ND, Tensor, ref.ND]> = [
      ['transposed + contiguous', B.transpose(), ref.transpose(b), A, a],
      ['contiguous + transposed', A, a, B.transpose(), ref.transpose(b)],
      ['sliced + sliced', A.slice([1, 1], [3, 4]), ref.slice(a, [1, 1], [3, 4]), B.slice([2, 0], [3, 4]), ref.slice(b, [2, 0], [3, 4])],
      [
        'expanded + transposed',
        A.slice([0, 0], [5, 1]).expand([5, 5]),
        ref.broadcastTo(ref.slice(a, [0, 0], [5, 1]), [5, 5]),
        B.slice([0, 0], [5, 5]).transpose(),
        ref.transpose(ref.slice(b, [0, 0], [5, 5])),
      ],
      ['row-broadcast of a sliced column', A.slice([0, 2], [5, 1]), ref.slice(a, [0, 2], [5, 1]), B.slice([1, 0], [1, 5]), ref.slice(b, [1, 0], [1, 5])],
    ];
    for (const c of [...ARITH.filter((k) => k.name !== 'pow'), ...COMPARE]) {
      for (const [label, x, xr, y, yr] of views) {
        const got = c.fn(x, y);
        const copy = c.fn(x.contiguous(), y.contiguous());
        assertClose(await read(got), await read(copy), { atol: 0, rtol: 0, roundExpected: false }, `${c.name} ${label} vs contiguous`);
        await expectTensor(got, { values: ref.zip(xr, yr, c.ref), ...TOL }, `${c.name} ${label} vs reference`);
      }
    }
  });

  it('large broadcasts (multi-threaded path) match the reference', async () => {
    const a = randND([300, 1], 100);
    const b = randND([1, 211], 101);
    await expectTensor(kiln.mul(T(a), T(b)), { shape: [300, 211], values: ref.zip(a, b, (x, y) => x * y), ...TOL }, 'outer product');
    const c = randND([70_001], 102);
    await expectTensor(kiln.sub(T(c), 0.25), { values: c.data.map((v) => v - 0.25), ...TOL }, 'big minus scalar');
    const d = randND([3, 40_000], 103);
    const e = randND([40_000], 104);
    await expectTensor(kiln.maximum(T(d), T(e)), { values: ref.zip(d, e, Math.max), exact: true }, 'rows vs vector');
    // two very long rows: each row is cut into segments for the threads
    const g = randND([2, 100_000], 107);
    const h = randND([100_000], 108);
    await expectTensor(kiln.add(T(g), T(h)), { values: ref.zip(g, h, (p, q) => p + q), ...TOL }, 'two long rows + vector');
    await expectTensor(kiln.greater(T(h), 0), { values: h.data.map((v) => +(v > 0)), exact: true }, 'long comparison');
    const f = randND([200, 300], 105);
    await expectTensor(kiln.add(T(f).transpose(), T(randND([200], 106))), {
      values: ref.zip(ref.transpose(f), randND([200], 106), (x, y) => x + y),
      ...TOL,
    }, 'transposed big');
  });

  it('method forms equal the functions', async () => {
    const a = T(randND([3, 4], 110, 0.5, 2));
    const b = T(randND([4], 111, 0.5, 2));
    for (const c of [...ARITH, ...COMPARE]) {
      const viaMethod = (a as unknown as Record<string, (b: Tensor) => Tensor>)[c.name](b);
      assertClose(await read(viaMethod), await read(c.fn(a, b)), { atol: 0, rtol: 0 }, c.name);
      expect(viaMethod.dtype).toBe(c.fn(a, b).dtype);
    }
  });
});
