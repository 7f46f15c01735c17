/**
 * Unary elementwise ops: random inputs against a float64 reference and tfjs, edge values
 * (tiny, huge, ±inf, NaN), limits, shapes, views and the multi-threaded path.
 */
import { expect, it } from 'vitest';
import * as kiln from '../ts/index.js';
import type { Tensor } from '../ts/index.js';
import { forEachBackend } from './backends.js';
import { SPECIALS, T, type Tol, assertClose, expectTensor, randND, read } from './helpers.js';
import * as ref from './reference.js';
import { tf, tfEval, tfT } from './tf.js';

interface UnaryCase {
  name: string;
  fn: (x: Tensor) => Tensor;
  ref: (x: number) => number;
  tf?: (x: tf.Tensor) => tf.Tensor;
  /** Range of the random inputs. */
  domain: [number, number];
  /** Tolerance on random inputs (default atol 1e-6, rtol 1e-5). */
  tol?: Tol;
  /** Tolerance on SPECIALS (default: relative 1e-5, absolute only below float32's normal range). */
  specialTol?: Tol;
}

/** Ops whose GPU kernels are checked only for |x| <= 1e5 (see the edge-value test). */
const GPU_PERIODIC = ['sin', 'cos'];

const CASES: UnaryCase[] = [
  { name: 'neg', fn: kiln.neg, ref: (x) => -x, tf: tf.neg, domain: [-10, 10], tol: { atol: 0, rtol: 0 } },
  { name: 'abs', fn: kiln.abs, ref: Math.abs, tf: tf.abs, domain: [-10, 10], tol: { atol: 0, rtol: 0 } },
  { name: 'exp', fn: kiln.exp, ref: Math.exp, tf: tf.exp, domain: [-20, 20], tol: { atol: 0, rtol: 2e-6 } },
  { name: 'log', fn: kiln.log, ref: Math.log, tf: tf.log, domain: [1e-3, 100] },
  { name: 'sqrt', fn: kiln.sqrt, ref: Math.sqrt, tf: tf.sqrt, domain: [0, 100] },
  { name: 'rsqrt', fn: kiln.rsqrt, ref: (x) => 1 / Math.sqrt(x), tf: tf.rsqrt, domain: [1e-3, 100] },
  { name: 'square', fn: kiln.square, ref: (x) => x * x, tf: tf.square, domain: [-10, 10] },
  { name: 'sin', fn: kiln.sin, ref: Math.sin, tf: tf.sin, domain: [-10, 10], specialTol: { atol: 1e-6, rtol: 1e-5 } },
  { name: 'cos', fn: kiln.cos, ref: Math.cos, tf: tf.cos, domain: [-10, 10], specialTol: { atol: 1e-6, rtol: 1e-5 } },
  { name: 'tanh', fn: kiln.tanh, ref: Math.tanh, tf: tf.tanh, domain: [-5, 5] },
  { name: 'sigmoid', fn: kiln.sigmoid, ref: ref.sigmoid, tf: tf.sigmoid, domain: [-20, 20] },
  { name: 'relu', fn: kiln.relu, ref: ref.relu, tf: tf.relu, domain: [-10, 10], tol: { atol: 0, rtol: 0 } },
  // PyTorch's default slope (tfjs defaults to 0.2, so pass it explicitly).
  { name: 'leakyRelu', fn: (x) => kiln.leakyRelu(x), ref: (x) => ref.leakyRelu(x, 0.01), tf: (x) => tf.leakyRelu(x, 0.01), domain: [-10, 10] },
  // exp(x) - 1 for tiny negative x loses relative (not absolute) precision; allow ~1 ulp of 1.
  { name: 'elu', fn: (x) => kiln.elu(x), ref: (x) => ref.elu(x, 1), tf: tf.elu, domain: [-10, 10], specialTol: { atol: 1e-7, rtol: 1e-5 } },
  // The exact erf form; Kiln's erf approximation is good to a few 1e-7 absolute.
  { name: 'gelu', fn: kiln.gelu, ref: ref.gelu, domain: [-8, 8], tol: { atol: 1e-6, rtol: 1e-5 }, specialTol: { atol: 1e-6, rtol: 1e-5 } },
  { name: 'softplus', fn: kiln.softplus, ref: ref.softplus, tf: tf.softplus, domain: [-30, 30] },
  { name: 'softsign', fn: kiln.softsign, ref: ref.softsign, domain: [-50, 50] },
  // No tfjs peer (tfjs has no mish): against the float64 formula only.
  { name: 'mish', fn: kiln.mish, ref: ref.mish, domain: [-30, 30], tol: { atol: 1e-6, rtol: 1e-5 }, specialTol: { atol: 1e-6, rtol: 1e-5 } },
];

const RANDOM_TOL: Tol = { atol: 1e-6, rtol: 1e-5 };
const SPECIAL_TOL: Tol = { atol: 1e-37, rtol: 1e-5 };

forEachBackend((backendName) => {
  for (const c of CASES) {
    it(`${c.name}: random inputs match the float64 reference`, async () => {
      const x = randND([5, 37], 100 + c.name.length, ...c.domain);
      const y = c.fn(T(x));
      await expectTensor(y, { shape: [5, 37], dtype: 'float32' });
      assertClose(await read(y), x.data.map(c.ref), c.tol ?? RANDOM_TOL, c.name, { shape: y.shape, inputs: x.data });
    });

    if (c.tf) {
      const tfFn = c.tf;
      it(`${c.name}: matches tfjs`, async () => {
        const x = randND([3, 4, 5], 200 + c.name.length, ...c.domain);
        const want = tfEval(() => tfFn(tfT(x)));
        const y = c.fn(T(x));
        expect([...y.shape]).toEqual(want.shape);
        // tfjs's softplus switches to approximations near its thresholds: compare loosely there.
        assertClose(await read(y), want.data, c.name === 'softplus' ? { atol: 1e-5, rtol: 1e-5 } : c.tol ?? RANDOM_TOL, c.name, {
          shape: y.shape,
          inputs: x.data,
        });
      });
    }

    it(`${c.name}: edge values (±1e-30, ±88, ±1e30, ±inf, NaN) match the reference`, async () => {
      // The GPU reduces sin/cos arguments with a two-part 2π (kiln-gpu's table.rs): exact to
      // |x| ~ 1e5, not at 1e30, which would need Payne-Hanek reduction (docs/gpu.md).
      const inputs = backendName === 'gpu' && GPU_PERIODIC.includes(c.name) ? SPECIALS.filter((v) => !(Math.abs(v) > 1e5) || !Number.isFinite(v)) : SPECIALS;
      const y = c.fn(kiln.tensor(inputs));
      assertClose(await read(y), inputs.map(c.ref), c.specialTol ?? SPECIAL_TOL, c.name, { inputs });
    });
  }

  it('NaN propagates through every unary op', async () => {
    for (const c of CASES) {
      const y = await read(c.fn(kiln.tensor([NaN, 1, NaN])));
      expect(Number.isNaN(y[0]) && Number.isNaN(y[2]), `${c.name}(NaN) = ${y[0]}`).toBe(true);
    }
  });

  it('limits at ±inf and at large magnitudes', async () => {
    // -0 and +0 are both fine wherever a limit is 0
    const at = async (f: (x: Tensor) => Tensor, xs: number[]) => (await read(f(kiln.tensor(xs)))).map((v) => (v === 0 ? 0 : v));
    expect(await at(kiln.sigmoid, [Infinity, -Infinity, 100, -100])).toEqual([1, 0, 1, expect.closeTo(0, 40)]);
    expect(await at(kiln.tanh, [Infinity, -Infinity, 100, -100])).toEqual([1, -1, 1, -1]);
    expect(await at(kiln.exp, [-Infinity, Infinity, -1000, 1000])).toEqual([0, Infinity, 0, Infinity]);
    expect(await at(kiln.softplus, [1000, -1000, Infinity, -Infinity])).toEqual([1000, 0, Infinity, 0]);
    expect(await at(kiln.relu, [-Infinity, Infinity])).toEqual([0, Infinity]);
    expect(Number.isNaN((await at(kiln.relu, [NaN]))[0])).toBe(true);
    expect(await at((x) => kiln.elu(x, 2), [-Infinity, Infinity])).toEqual([-2, Infinity]);
    expect(await at((x) => kiln.leakyRelu(x, 0.5), [-Infinity, Infinity])).toEqual([-Infinity, Infinity]);
    expect(await at(kiln.log, [0, Infinity])).toEqual([-Infinity, Infinity]);
    expect(Number.isNaN((await at(kiln.log, [-1]))[0])).toBe(true);
    expect(Number.isNaN((await at(kiln.sqrt, [-1]))[0])).toBe(true);
    expect(await at(kiln.rsqrt, [0, Infinity])).toEqual([Infinity, 0]);
    expect(await at(kiln.abs, [-Infinity])).toEqual([Infinity]);
    expect(await at(kiln.square, [1e30, -Infinity])).toEqual([Infinity, Infinity]);
  });

  it('gelu tends to 0 at -inf and to x at +inf', async () => {
    const y = await read(kiln.gelu(kiln.tensor([-Infinity, -1000, -100, 100, 1000, Infinity])));
    // -0 and 0 are both fine
    expect(y.map((v) => (v === 0 ? 0 : v))).toEqual([0, 0, 0, 100, 1000, Infinity]);
  });

  it('exp stays finite and accurate up to the float32 overflow threshold (88.72)', async () => {
    const xs = [80, 85, 88, 88.3, 88.4, 88.5, 88.6, 88.7, 88.72].map(Math.fround);
    const y = await read(kiln.exp(kiln.tensor(xs)));
    assertClose(y, xs.map(Math.exp), { atol: 0, rtol: 2e-6 }, 'exp', { inputs: xs });
  });

  it('leakyRelu and elu take alpha', async () => {
    const x = randND([4, 9], 7, -5, 5);
    const lr = kiln.leakyRelu(T(x), 0.2);
    assertClose(await read(lr), tfEval(() => tf.leakyRelu(tfT(x), 0.2)).data, { atol: 1e-6, rtol: 1e-6 }, 'leakyRelu(0.2)');
    const el = kiln.elu(T(x), 0.5);
    assertClose(await read(el), x.data.map((v) => ref.elu(v, 0.5)), { atol: 1e-6, rtol: 1e-5 }, 'elu(0.5)');
    // method forms forward alpha
    assertClose(await read(T(x).leakyRelu(0.3)), x.data.map((v) => ref.leakyRelu(v, 0.3)), { atol: 1e-6, rtol: 1e-6 }, 'method');
  });

  it('keeps the shape: scalars, size-0 and 3-D tensors', async () => {
    for (const c of CASES) {
      const s = c.fn(kiln.scalar(0.5));
      await expectTensor(s, { shape: [], dtype: 'float32', values: [c.ref(0.5)], atol: 1e-6, rtol: 1e-5 }, `${c.name}(scalar)`);
      await expectTensor(c.fn(kiln.zeros([2, 0, 3])), { shape: [2, 0, 3], values: [] }, `${c.name}(empty)`);
      await expectTensor(c.fn(kiln.ones([2, 3, 4])), { shape: [2, 3, 4] }, `${c.name}(3-D)`);
    }
  });

  it('gives the same results on transposed, sliced and expanded views as on contiguous copies', async () => {
    const x = randND([6, 8], 11, 0.1, 3);
    for (const c of CASES) {
      const base = T(x);
      const views: Array<[string, Tensor, ref.ND]> = [
        ['transposed', base.transpose(), ref.transpose(x)],
        ['sliced', base.slice([1, 2], [4, 5]), ref.slice(x, [1, 2], [4, 5])],
        ['expanded', base.slice([0, 0], [1, 8]).expand([3, 8]), ref.broadcastTo(ref.slice(x, [0, 0], [1, 8]), [3, 8])],
      ];
      for (const [kind, v, r] of views) {
        const y = c.fn(v);
        const yc = c.fn(v.contiguous());
        await expectTensor(y, { shape: r.shape }, `${c.name}(${kind})`);
        assertClose(await read(y), await read(yc), { atol: 0, rtol: 0, roundExpected: false }, `${c.name}(${kind}) vs contiguous`);
        assertClose(await read(y), r.data.map(c.ref), c.tol ?? RANDOM_TOL, `${c.name}(${kind}) vs reference`);
      }
    }
  });

  it('large tensors (multi-threaded path) match the reference', async () => {
    const x = randND([100_003], 12, -6, 6);
    const t = T(x);
    for (const c of CASES.filter((k) => ['exp', 'tanh', 'sigmoid', 'gelu', 'relu', 'softplus', 'sin'].includes(k.name))) {
      assertClose(await read(c.fn(t)), x.data.map(c.ref), c.tol ?? RANDOM_TOL, c.name);
    }
  });
});
