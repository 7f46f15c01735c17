/**
 * Reductions (sum mean max min argmax argmin variance logSumExp) over single, multiple, negative
 * and all axes with keepDims; NaN/inf behaviour; softmax and logSoftmax on every axis.
 */
import { expect, it } from 'vitest';
import * as kiln from '../ts/index.js';
import type { Tensor } from '../ts/index.js';
import { forEachBackend } from './backends.js';
import { T, assertClose, expectTensor, expectThrows, randND, randIntND, read } from './helpers.js';
import * as ref from './reference.js';
import { tf, tfEval, tfT } from './tf.js';

type Axes = number | number[] | undefined;

interface ReduceCase {
  name: string;
  fn: (x: Tensor, axis?: Axes, keepDims?: boolean) => Tensor;
  ref: (v: number[]) => number;
  tf?: (x: tf.Tensor, axis: Axes, keepDims: boolean) => tf.Tensor;
}

const CASES: ReduceCase[] = [
  { name: 'sum', fn: kiln.sum, ref: ref.sum, tf: (x, a, k) => tf.sum(x, a, k) },
  { name: 'mean', fn: kiln.mean, ref: ref.mean, tf: (x, a, k) => tf.mean(x, a, k) },
  { name: 'max', fn: kiln.max, ref: ref.max, tf: (x, a, k) => tf.max(x, a, k) },
  { name: 'min', fn: kiln.min, ref: ref.min, tf: (x, a, k) => tf.min(x, a, k) },
  { name: 'logSumExp', fn: kiln.logSumExp, ref: ref.logSumExp, tf: (x, a, k) => tf.logSumExp(x, a, k) },
  {
    name: 'variance(correction 0)',
    fn: (x, a, k) => kiln.variance(x, a, k, 0),
    ref: ref.variance(0),
    tf: (x, a, k) => tf.moments(x, a, k).variance,
  },
  { name: 'variance(correction 1)', fn: (x, a, k) => kiln.variance(x, a, k, 1), ref: ref.variance(1) },
];

/** Axis arguments on a rank-3 tensor: single, negative, several (unsorted too) and all. */
const AXES: Axes[] = [undefined, 0, 1, 2, -1, -3, [0, 2], [2, 0], [1, 2], [-1, 0], [0, 1, 2], []];

const TOL = { atol: 1e-5, rtol: 1e-5 };

forEachBackend(() => {
  for (const c of CASES) {
    it(`${c.name}: every axis combination, with and without keepDims, matches the reference`, async () => {
      const x = randND([3, 4, 5], 1, -2, 2);
      const X = T(x);
      for (const axes of AXES) {
        for (const keepDims of [false, true]) {
          const want = ref.reduce(x, axes, keepDims, c.ref);
          const y = c.fn(X, axes, keepDims);
          await expectTensor(y, { shape: want.shape, dtype: 'float32', values: want, ...TOL }, `${c.name} axis ${JSON.stringify(axes)} keepDims ${keepDims}`);
        }
      }
    });

    if (c.tf) {
      const tfFn = c.tf;
      it(`${c.name}: matches tfjs`, async () => {
        const x = randND([4, 6, 7], 2, -3, 3);
        for (const [axes, keepDims] of [[undefined, false], [1, false], [[0, 2], true], [-1, true]] as Array<[Axes, boolean]>) {
          const want = tfEval(() => tfFn(tfT(x), axes, keepDims));
          await expectTensor(c.fn(T(x), axes, keepDims), { shape: want.shape, values: want.data, ...TOL }, `${c.name} ${JSON.stringify(axes)}`);
        }
      });
    }
  }

  it('reductions of 1-D and scalar tensors, and of size-0 dimensions', async () => {
    const v = randND([17], 3);
    for (const c of CASES) {
      await expectTensor(c.fn(T(v)), { shape: [], values: [c.ref(v.data)], ...TOL }, `${c.name}(1-D)`);
      await expectTensor(c.fn(T(v), 0, true), { shape: [1], values: [c.ref(v.data)], ...TOL }, `${c.name}(1-D, keepDims)`);
    }
    await expectTensor(kiln.sum(kiln.scalar(2.5)), { shape: [], values: [2.5] }, 'sum(scalar)');
    await expectTensor(kiln.max(kiln.scalar(-1)), { shape: [], values: [-1] }, 'max(scalar)');
    // Summing over an empty dimension gives zeros; over a non-empty one of an empty tensor gives an empty result.
    await expectTensor(kiln.sum(kiln.zeros([0, 3]), 0), { shape: [3], values: [0, 0, 0] }, 'sum over size-0 axis');
    await expectTensor(kiln.sum(kiln.zeros([0, 3]), 1), { shape: [0], values: [] }, 'sum keeping the size-0 axis');
    await expectTensor(kiln.max(kiln.zeros([0, 3]), 1), { shape: [0], values: [] }, 'max keeping the size-0 axis');
    await expectTensor(kiln.logSumExp(kiln.zeros([2, 0]), 1), { shape: [2], values: [-Infinity, -Infinity] }, 'logSumExp of nothing');
  });

  it('argmax and argmin return int32 indices along an axis or into the flattened tensor', async () => {
    const x = randND([3, 4, 5], 4);
    const X = T(x);
    for (const axis of [0, 1, 2, -1, -2]) {
      for (const [name, fn, r] of [
        ['argmax', kiln.argmax, ref.argmax],
        ['argmin', kiln.argmin, ref.argmin],
      ] as const) {
        const want = ref.reduce(x, axis, false, r);
        await expectTensor(fn(X, axis), { shape: want.shape, dtype: 'int32', values: want, exact: true }, `${name} axis ${axis}`);
        const wantTf = tfEval(() => (name === 'argmax' ? tf.argMax : tf.argMin)(tfT(x), axis));
        await expectTensor(fn(X, axis), { values: wantTf.data, exact: true }, `${name} axis ${axis} vs tfjs`);
      }
    }
    await expectTensor(kiln.argmax(X), { shape: [], dtype: 'int32', values: [ref.argmax(x.data)], exact: true }, 'argmax flattened');
    await expectTensor(kiln.argmin(X), { shape: [], dtype: 'int32', values: [ref.argmin(x.data)], exact: true }, 'argmin flattened');
    expect((await X.argmax(1).data()) instanceof Int32Array).toBe(true);
  });

  it('argmax/argmin pick the first occurrence of ties', async () => {
    const x = kiln.tensor([
      [1, 3, 3, 0],
      [2, 2, 1, 2],
      [5, 5, 5, 5],
    ]);
    expect(await read(kiln.argmax(x, 1))).toEqual([1, 0, 0]);
    expect(await read(kiln.argmin(x, 1))).toEqual([3, 2, 0]);
    expect(await read(kiln.argmax(x, 0))).toEqual([2, 2, 2, 2]);
    expect(await read(kiln.argmin(x, 0))).toEqual([0, 1, 1, 0]);
    expect(await read(kiln.argmax(x))).toEqual([8]);
    // ties from many random small integers, flattened and per row
    const r = randIntND([6, 50], 5, 0, 4);
    const R = T(r);
    await expectTensor(kiln.argmax(R, 1), { values: ref.reduce(r, 1, false, ref.argmax), exact: true }, 'argmax ties');
    await expectTensor(kiln.argmin(R, 0), { values: ref.reduce(r, 0, false, ref.argmin), exact: true }, 'argmin ties');
  });

  it('NaN propagates through max, min, sum, mean and logSumExp', async () => {
    const x = kiln.tensor([
      [1, NaN, 3],
      [4, 5, 6],
      [NaN, -Infinity, Infinity],
    ]);
    for (const [name, fn] of [
      ['max', kiln.max],
      ['min', kiln.min],
      ['sum', kiln.sum],
      ['mean', kiln.mean],
      ['logSumExp', kiln.logSumExp],
    ] as const) {
      const y = await read(fn(x, 1));
      expect(Number.isNaN(y[0]), `${name} row 0 = ${y[0]}`).toBe(true);
      expect(Number.isNaN(y[1]), `${name} row 1`).toBe(false);
      expect(Number.isNaN(y[2]), `${name} row 2 = ${y[2]}`).toBe(true);
      expect(Number.isNaN((await read(fn(x)))[0]), `${name} over all`).toBe(true);
    }
    // NaN in the last position (after the running max) too
    expect(Number.isNaN((await read(kiln.max(kiln.tensor([1, 2, NaN]))))[0])).toBe(true);
    expect(Number.isNaN((await read(kiln.min(kiln.tensor([1, 2, NaN]))))[0])).toBe(true);
  });

  it('max/min handle infinities', async () => {
    const x = kiln.tensor([
      [-Infinity, -Infinity],
      [Infinity, 1],
      [-Infinity, 3],
    ]);
    expect(await read(kiln.max(x, 1))).toEqual([-Infinity, Infinity, 3]);
    expect(await read(kiln.min(x, 1))).toEqual([-Infinity, 1, -Infinity]);
  });

  it('logSumExp is stable for large values and handles -inf rows', async () => {
    const ln2 = Math.log(2);
    const y = await read(kiln.logSumExp(kiln.tensor([[1000, 1000], [-1000, -1000], [1000, -1000], [-Infinity, -Infinity], [-Infinity, 0], [Infinity, 1]]), 1));
    assertClose(y, [1000 + ln2, -1000 + ln2, 1000, -Infinity, 0, Infinity], { atol: 1e-4, rtol: 1e-6 }, 'logSumExp');
    const big = randND([4, 300], 6, 80, 120);
    await expectTensor(kiln.logSumExp(T(big), -1), { values: ref.reduce(big, -1, false, ref.logSumExp), ...TOL }, 'logSumExp of 80..120');
  });

  it('variance: constant rows, large offsets, and the correction divisor', async () => {
    await expectTensor(kiln.variance(kiln.full([3, 7], 4.25), 1), { values: [0, 0, 0], atol: 0, rtol: 0 }, 'constant');
    const x = ref.map(randND([5, 64], 7, -1, 1), (v) => Math.fround(1000 + v));
    await expectTensor(kiln.variance(T(x), 1), { values: ref.reduce(x, 1, false, ref.variance(0)), atol: 2e-4, rtol: 1e-3 }, 'offset 1000');
    const v = kiln.tensor([1, 2, 3, 4]);
    expect(await read(kiln.variance(v))).toEqual([1.25]);
    expect(await read(kiln.variance(v, 0, false, 1))).toEqual([Math.fround(5 / 3)]);
    expect(await read(v.variance(undefined, true, 1))).toEqual([Math.fround(5 / 3)]);
  });

  it('reductions of transposed, sliced and expanded views match contiguous copies', async () => {
    const x = randND([6, 7, 8], 8);
    const X = T(x);
    const views: Array<[string, Tensor, ref.ND]> = [
      ['permuted', X.permute([2, 0, 1]), ref.permute(x, [2, 0, 1])],
      ['sliced', X.slice([1, 2, 3], [4, 3, 5]), ref.slice(x, [1, 2, 3], [4, 3, 5])],
      ['expanded', X.slice([0, 0, 0], [1, 7, 8]).expand([3, 7, 8]), ref.broadcastTo(ref.slice(x, [0, 0, 0], [1, 7, 8]), [3, 7, 8])],
    ];
    for (const c of CASES) {
      for (const [label, v, r] of views) {
        for (const axes of [undefined, 0, [1, 2], -1] as Axes[]) {
          const got = c.fn(v, axes);
          assertClose(await read(got), await read(c.fn(v.contiguous(), axes)), { atol: 0, rtol: 0, roundExpected: false }, `${c.name} ${label} vs contiguous`);
          await expectTensor(got, { values: ref.reduce(r, axes, false, c.ref), ...TOL }, `${c.name} ${label} ${JSON.stringify(axes)}`);
        }
      }
    }
  });

  it('large reductions (multi-threaded path) match the float64 reference', async () => {
    const x = randND([64, 1500], 9);
    const X = T(x);
    for (const c of CASES) {
      for (const axes of [1, 0, undefined] as Axes[]) {
        const want = ref.reduce(x, axes, false, c.ref);
        // float32 accumulation of up to 96,000 terms of size <= 1
        await expectTensor(c.fn(X, axes), { values: want, atol: 2e-3, rtol: 1e-4 }, `${c.name} ${JSON.stringify(axes)}`);
      }
    }
    const n = randND([200_000], 10, 0, 1);
    const s = await read(kiln.sum(T(n)));
    expect(Math.abs(s[0] - ref.sum(n.data)) / ref.sum(n.data)).toBeLessThan(1e-5);
    expect(await read(kiln.argmax(T(n)))).toEqual([ref.argmax(n.data)]);
  });

  it('accuracy: sum, mean, variance and logSumExp over 10^6 elements stay within 1e-5 relative', async () => {
    // float32 data, float64 references (tfjs-cpu also accumulates in float64). Pairwise or
    // compensated float32 summation is good to ~1e-6 here; a running float32 sum drifts by ~1e-3.
    const n = 1_000_000;
    const relErr = (got: number, want: number) => Math.abs(got - want) / Math.abs(want);
    const tenth = Math.fround(0.1);
    const c = kiln.full([n], 0.1);
    const problems: string[] = [];
    const check = (label: string, got: number, want: number, tol = 1e-5) => {
      if (!(relErr(got, want) <= tol)) problems.push(`${label}: got ${got}, expected ${want} (relative error ${relErr(got, want).toExponential(2)})`);
    };
    check('sum(full([1e6], 0.1))', (await read(kiln.sum(c)))[0], n * tenth);
    check('mean(full([1e6], 0.1))', (await read(kiln.mean(c)))[0], tenth);
    check('sum(full([4, 250000], 0.1), 1)[0]', (await read(kiln.sum(c.reshape([4, n / 4]), 1)))[0], (n / 4) * tenth);
    check('sum(full([250000, 4], 0.1), 0)[0]', (await read(kiln.sum(c.reshape([n / 4, 4]), 0)))[0], (n / 4) * tenth);
    check('sum vs tfjs', (await read(kiln.sum(c)))[0], tfEval(() => tf.sum(tf.fill([n], 0.1))).data[0]);
    const z = kiln.randn([n], { seed: 5, mean: 3, std: 2 });
    const zd = await read(z);
    const mean = zd.reduce((a, b) => a + b, 0) / n;
    const variance = zd.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
    check('mean(randn 1e6)', (await read(kiln.mean(z)))[0], mean);
    check('variance(randn 1e6)', (await read(kiln.variance(z)))[0], variance);
    check('logSumExp(full([1e6], 0.1))', (await read(kiln.logSumExp(c)))[0], tenth + Math.log(n));
    expect(problems, problems.join('\n')).toEqual([]);
  });

  // ---- softmax / logSoftmax ----------------------------------------------------------------

  it('softmax and logSoftmax on every axis of a 3-D tensor match the reference', async () => {
    const x = randND([3, 4, 5], 11, -3, 3);
    const X = T(x);
    for (const axis of [0, 1, 2, -1, -2, -3]) {
      await expectTensor(kiln.softmax(X, axis), { shape: [3, 4, 5], dtype: 'float32', values: ref.softmax(x, axis), atol: 1e-6, rtol: 1e-5 }, `softmax axis ${axis}`);
      await expectTensor(kiln.logSoftmax(X, axis), { shape: [3, 4, 5], dtype: 'float32', values: ref.softmax(x, axis, true), ...TOL }, `logSoftmax axis ${axis}`);
    }
    // default axis is the last
    assertClose(await read(kiln.softmax(X)), ref.softmax(x, -1).data, { atol: 1e-6, rtol: 1e-5 }, 'softmax default axis');
    assertClose(await read(X.logSoftmax()), ref.softmax(x, -1, true).data, TOL, 'logSoftmax default axis');
  });

  it('softmax and logSoftmax match tfjs on the last axis', async () => {
    const x = randND([6, 10], 12, -5, 5);
    assertClose(await read(kiln.softmax(T(x))), tfEval(() => tf.softmax(tfT(x))).data, { atol: 1e-6, rtol: 1e-5 }, 'softmax');
    assertClose(await read(kiln.logSoftmax(T(x))), tfEval(() => tf.logSoftmax(tfT(x))).data, TOL, 'logSoftmax');
  });

  it('softmax rows sum to 1, on every axis', async () => {
    const x = randND([4, 5, 6], 13, -10, 10);
    for (const axis of [0, 1, 2]) {
      const s = await read(kiln.sum(kiln.softmax(T(x), axis), axis));
      assertClose(s, s.map(() => 1), { atol: 1e-6, rtol: 0 }, `sum of softmax along ${axis}`);
    }
  });

  it('softmax/logSoftmax do not overflow for large logits and handle -inf (masked) entries', async () => {
    const big = await read(kiln.softmax(kiln.tensor([[1000, 1001, 1002], [-1000, -1001, -1002], [88, 89, 90]])));
    const small = ref.softmax({ shape: [1, 3], data: [0, 1, 2] }, -1).data;
    assertClose(big, [...small, ...[...small].reverse(), ...small], { atol: 1e-6, rtol: 1e-5 }, 'softmax of large logits');
    const logBig = await read(kiln.logSoftmax(kiln.tensor([1000, 1001, 1002])));
    assertClose(logBig, ref.softmax({ shape: [3], data: [0, 1, 2] }, 0, true).data, TOL, 'logSoftmax of large logits');
    const masked = await read(kiln.softmax(kiln.tensor([0, -Infinity, Math.log(3)])));
    assertClose(masked, [0.25, 0, 0.75], { atol: 1e-7, rtol: 1e-6 }, 'softmax with -inf');
    const maskedLog = await read(kiln.logSoftmax(kiln.tensor([0, -Infinity, Math.log(3)])));
    assertClose(maskedLog, [Math.log(0.25), -Infinity, Math.log(0.75)], TOL, 'logSoftmax with -inf');
  });

  it('softmax of a scalar is 1 and logSoftmax of a scalar is 0', async () => {
    for (const v of [0, 2.5, -7]) {
      await expectTensor(kiln.softmax(kiln.scalar(v)), { shape: [], values: [1] }, `softmax(${v})`);
      await expectTensor(kiln.logSoftmax(kiln.scalar(v)), { shape: [], values: [0] }, `logSoftmax(${v})`);
    }
  });

  it('softmax along a size-1 axis is all ones, and of size-0 tensors is empty', async () => {
    await expectTensor(kiln.softmax(T(randND([3, 1], 14)), 1), { values: [1, 1, 1] }, 'size-1 axis');
    await expectTensor(kiln.softmax(kiln.zeros([0, 4])), { shape: [0, 4], values: [] }, 'size-0');
    await expectTensor(kiln.softmax(kiln.zeros([4, 0])), { shape: [4, 0], values: [] }, 'size-0 axis');
  });

  it('softmax of views matches contiguous copies; large softmax (threaded) matches the reference', async () => {
    const x = randND([5, 6, 7], 15);
    const X = T(x);
    const v = X.permute([1, 2, 0]);
    for (const axis of [0, 1, 2]) {
      assertClose(await read(kiln.softmax(v, axis)), await read(kiln.softmax(v.contiguous(), axis)), { atol: 0, rtol: 0 }, `permuted axis ${axis}`);
      await expectTensor(kiln.logSoftmax(v, axis), { values: ref.softmax(ref.permute(x, [1, 2, 0]), axis, true), ...TOL }, `permuted logSoftmax ${axis}`);
    }
    const s = X.slice([1, 0, 2], [3, 6, 4]);
    await expectTensor(kiln.softmax(s, 1), { values: ref.softmax(ref.slice(x, [1, 0, 2], [3, 6, 4]), 1), atol: 1e-6, rtol: 1e-5 }, 'sliced');
    const long = randND([2, 50_000], 17, -4, 4);
    const sm = await read(kiln.softmax(T(long)));
    const sums = [0, 1].map((r) => sm.slice(r * 50_000, (r + 1) * 50_000).reduce((a, b) => a + b, 0));
    assertClose(sums, [1, 1], { atol: 1e-4, rtol: 0 }, 'long rows sum to 1');
    assertClose(sm.slice(0, 1000), ref.softmax({ shape: [50_000], data: long.data.slice(0, 50_000) }, 0).data.slice(0, 1000), { atol: 1e-9, rtol: 1e-4 }, 'long rows');
    const big = randND([300, 257], 16, -4, 4);
    await expectTensor(kiln.softmax(T(big)), { values: ref.softmax(big, -1), atol: 1e-6, rtol: 1e-4 }, 'large, last axis');
    await expectTensor(kiln.logSoftmax(T(big), 0), { values: ref.softmax(big, 0, true), ...TOL }, 'large, axis 0');
  });

  it('out-of-range axes throw, naming the op', () => {
    const x = kiln.zeros([2, 3]);
    expectThrows(() => kiln.softmax(x, 2), 'softmax', '2');
    expectThrows(() => kiln.logSoftmax(x, -3), 'logSoftmax', '-3');
    expectThrows(() => kiln.mean(x, [0, 2]), 'mean', '2');
    expectThrows(() => kiln.argmax(x, 2), 'argmax', '2');
    expectThrows(() => kiln.max(x, [0, 0]), 'max');
  });
});
