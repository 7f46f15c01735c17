/**
 * Creating tensors: from nested arrays, typed arrays and booleans; constants; arange; eye; seeded
 * random numbers (reproducibility and distribution).
 */
import { expect, it } from 'vitest';
import * as kiln from '../ts/index.js';
import { forEachBackend } from './backends.js';
import { assertClose, expectTensor, expectThrows, read } from './helpers.js';
import * as ref from './reference.js';

const EXACT = { exact: true } as const;

function stats(v: number[]) {
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
  return { mean, std, min: v.reduce((a, b) => Math.min(a, b), Infinity), max: v.reduce((a, b) => Math.max(a, b), -Infinity) };
}

forEachBackend(() => {
  it('tensor from nested arrays infers the shape; float32 by default', async () => {
    await expectTensor(kiln.tensor([[1, 2, 3], [4, 5, 6]]), { shape: [2, 3], dtype: 'float32', values: [1, 2, 3, 4, 5, 6], ...EXACT });
    await expectTensor(kiln.tensor([[[1], [2]], [[3], [4]]]), { shape: [2, 2, 1], values: [1, 2, 3, 4], ...EXACT });
    await expectTensor(kiln.tensor([0.1, -2.5]), { shape: [2], values: [Math.fround(0.1), -2.5], ...EXACT });
    await expectTensor(kiln.tensor(3.5), { shape: [], dtype: 'float32', values: [3.5], ...EXACT });
    await expectTensor(kiln.tensor([]), { shape: [0], dtype: 'float32', values: [] });
    await expectTensor(kiln.tensor([[], []]), { shape: [2, 0], values: [] });
    await expectTensor(kiln.tensor([NaN, Infinity, -Infinity]), { values: [NaN, Infinity, -Infinity], ...EXACT });
  });

  it('tensor from typed arrays picks the dtype from the array type; shape reshapes', async () => {
    await expectTensor(kiln.tensor(new Float32Array([1, 2, 3])), { shape: [3], dtype: 'float32', values: [1, 2, 3], ...EXACT });
    await expectTensor(kiln.tensor(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]), { shape: [2, 3], values: [1, 2, 3, 4, 5, 6], ...EXACT });
    await expectTensor(kiln.tensor(new Int32Array([-1, 2, 2147483647]), [3, 1]), { shape: [3, 1], dtype: 'int32', values: [-1, 2, 2147483647], ...EXACT });
    // Bytes default to int32 (labels and pixels, as in tfjs); bool needs booleans or dtype 'bool'.
    await expectTensor(kiln.tensor(new Uint8Array([7, 0, 255])), { shape: [3], dtype: 'int32', values: [7, 0, 255], ...EXACT });
    await expectTensor(kiln.tensor(new Uint8Array([1, 0, 1, 1]), undefined, 'bool'), { shape: [4], dtype: 'bool', values: [1, 0, 1, 1], ...EXACT });
    await expectTensor(kiln.tensor(new Float32Array([5]), []), { shape: [], values: [5], ...EXACT });
    // the tensor owns a copy: changing the source array afterwards does not change it
    const src = new Float32Array([1, 2, 3]);
    const t = kiln.tensor(src);
    src[0] = 100;
    expect(await read(t)).toEqual([1, 2, 3]);
    // and data() hands out a copy too
    const d = await t.data();
    d[1] = -7;
    expect(await read(t)).toEqual([1, 2, 3]);
  });

  it('tensor from booleans is bool; an explicit dtype converts', async () => {
    await expectTensor(kiln.tensor([[true, false], [false, true]]), { shape: [2, 2], dtype: 'bool', values: [1, 0, 0, 1], ...EXACT });
    await expectTensor(kiln.tensor(true), { shape: [], dtype: 'bool', values: [1], ...EXACT });
    await expectTensor(kiln.tensor([1, 2, 3], undefined, 'int32'), { dtype: 'int32', values: [1, 2, 3], ...EXACT });
    await expectTensor(kiln.tensor([0, 2, -1], undefined, 'bool'), { dtype: 'bool', values: [0, 1, 1], ...EXACT });
    await expectTensor(kiln.tensor([1, 2, 3, 4], [2, 2], 'int32'), { shape: [2, 2], dtype: 'int32', values: [1, 2, 3, 4], ...EXACT });
  });

  it('scalar', async () => {
    await expectTensor(kiln.scalar(3), { shape: [], dtype: 'float32', values: [3], ...EXACT });
    await expectTensor(kiln.scalar(true), { shape: [], dtype: 'bool', values: [1], ...EXACT });
    await expectTensor(kiln.scalar(-4, 'int32'), { shape: [], dtype: 'int32', values: [-4], ...EXACT });
    expect(kiln.scalar(1).rank).toBe(0);
    expect(kiln.scalar(1).size).toBe(1);
  });

  it('zeros, ones, full in every dtype', async () => {
    await expectTensor(kiln.zeros([2, 3]), { shape: [2, 3], dtype: 'float32', values: new Array(6).fill(0), ...EXACT });
    await expectTensor(kiln.ones([4]), { shape: [4], dtype: 'float32', values: [1, 1, 1, 1], ...EXACT });
    await expectTensor(kiln.zeros([2], 'int32'), { dtype: 'int32', values: [0, 0], ...EXACT });
    await expectTensor(kiln.ones([2], 'bool'), { dtype: 'bool', values: [1, 1], ...EXACT });
    await expectTensor(kiln.full([2, 2], 2.5), { dtype: 'float32', values: [2.5, 2.5, 2.5, 2.5], ...EXACT });
    await expectTensor(kiln.full([3], -7, 'int32'), { dtype: 'int32', values: [-7, -7, -7], ...EXACT });
    await expectTensor(kiln.full([3], 3.9, 'int32'), { dtype: 'int32', values: [3, 3, 3], ...EXACT }, 'truncates');
    await expectTensor(kiln.full([1], 2, 'bool'), { dtype: 'bool', values: [1], ...EXACT });
    await expectTensor(kiln.full([], 5), { shape: [], values: [5], ...EXACT });
    await expectTensor(kiln.full([2], NaN), { values: [NaN, NaN], ...EXACT });
    await expectTensor(kiln.zeros([3, 0, 2]), { shape: [3, 0, 2], values: [] });
  });

  it('zerosLike and onesLike copy the shape and dtype, also of views', async () => {
    const f = kiln.tensor([[1, 2, 3], [4, 5, 6]]);
    await expectTensor(kiln.zerosLike(f), { shape: [2, 3], dtype: 'float32', values: new Array(6).fill(0), ...EXACT });
    await expectTensor(kiln.onesLike(f.transpose()), { shape: [3, 2], dtype: 'float32', values: new Array(6).fill(1), ...EXACT });
    await expectTensor(kiln.onesLike(kiln.tensor(new Int32Array([5, 6]))), { dtype: 'int32', values: [1, 1], ...EXACT });
    await expectTensor(kiln.zerosLike(kiln.tensor([true])), { dtype: 'bool', values: [0], ...EXACT });
    await expectTensor(kiln.onesLike(kiln.scalar(9)), { shape: [], values: [1], ...EXACT });
  });

  it('arange with 1, 2 and 3 arguments, negative and fractional steps', async () => {
    await expectTensor(kiln.arange(5), { shape: [5], dtype: 'float32', values: [0, 1, 2, 3, 4], ...EXACT });
    await expectTensor(kiln.arange(2, 6), { values: [2, 3, 4, 5], ...EXACT });
    await expectTensor(kiln.arange(0, 10, 3), { values: [0, 3, 6, 9], ...EXACT });
    await expectTensor(kiln.arange(5, 0, -1), { values: [5, 4, 3, 2, 1], ...EXACT });
    await expectTensor(kiln.arange(1, -1, -0.5), { values: [1, 0.5, 0, -0.5], ...EXACT });
    await expectTensor(kiln.arange(0, 1, 0.25), { values: [0, 0.25, 0.5, 0.75], ...EXACT });
    await expectTensor(kiln.arange(-3, 3, 2), { values: [-3, -1, 1], ...EXACT });
    await expectTensor(kiln.arange(3, 3), { shape: [0], values: [] });
    await expectTensor(kiln.arange(3, 0), { shape: [0], values: [] }, 'stop below start with a positive step');
    await expectTensor(kiln.arange(0), { shape: [0], values: [] });
    await expectTensor(kiln.arange(0, 5, 1, 'int32'), { dtype: 'int32', values: [0, 1, 2, 3, 4], ...EXACT });
    const n = 1000;
    const big = await read(kiln.arange(0, n * 0.1, 0.1));
    expect(big.length).toBe(n);
    assertClose(big, Array.from({ length: n }, (_, i) => i * 0.1), { atol: 1e-4, rtol: 1e-6 }, 'arange(0, 100, 0.1)');
  });

  it('eye: square, wide, tall and empty', async () => {
    for (const [r, c] of [[3, 3], [2, 4], [4, 2], [1, 1], [0, 0], [0, 3]]) {
      await expectTensor(kiln.eye(r, c), { shape: [r, c], dtype: 'float32', values: ref.eye(r, c), ...EXACT }, `eye(${r}, ${c})`);
    }
    await expectTensor(kiln.eye(3), { shape: [3, 3], values: ref.eye(3, 3), ...EXACT }, 'eye(3)');
  });

  it('randn/randu: the same seed gives identical numbers, different seeds differ', async () => {
    const a = await read(kiln.randn([1000], { seed: 42 }));
    const b = await read(kiln.randn([1000], { seed: 42 }));
    const c = await read(kiln.randn([1000], { seed: 43 }));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    const u1 = await read(kiln.randu([3, 7], { seed: 5 }));
    expect(await read(kiln.randu([3, 7], { seed: 5 }))).toEqual(u1);
    expect(await read(kiln.randu([3, 7], { seed: 6 }))).not.toEqual(u1);
    // an explicit seed is independent of the global generator's state
    kiln.randn([10]);
    expect(await read(kiln.randn([1000], { seed: 42 }))).toEqual(a);
    // mean/std/low/high transform the same stream
    const shifted = await read(kiln.randn([1000], { seed: 42, mean: 3, std: 2 }));
    assertClose(shifted, a.map((v) => 3 + 2 * v), { atol: 1e-5, rtol: 1e-6 }, 'mean + std * z');
    expect(new Set(a).size).toBeGreaterThan(990);
  });

  it('setSeed makes unseeded draws reproducible', async () => {
    kiln.setSeed(7);
    const a1 = await read(kiln.randn([100]));
    const a2 = await read(kiln.randu([100]));
    kiln.setSeed(7);
    const b1 = await read(kiln.randn([100]));
    const b2 = await read(kiln.randu([100]));
    expect(b1).toEqual(a1);
    expect(b2).toEqual(a2);
    // successive draws continue the stream rather than repeat it
    expect(await read(kiln.randn([100]))).not.toEqual(a1);
    kiln.setSeed(8);
    expect(await read(kiln.randn([100]))).not.toEqual(a1);
  });

  it('randn has mean ≈ 0 and std ≈ 1 over 100k samples, with normal tails', async () => {
    const v = await read(kiln.randn([100_000], { seed: 123 }));
    const s = stats(v);
    // standard errors: 1/sqrt(n) = 0.0032 for the mean, ~0.0022 for the std; allow ~6 of them
    expect(Math.abs(s.mean)).toBeLessThan(0.02);
    expect(Math.abs(s.std - 1)).toBeLessThan(0.015);
    const within1 = v.filter((x) => Math.abs(x) < 1).length / v.length;
    const beyond3 = v.filter((x) => Math.abs(x) > 3).length / v.length;
    expect(Math.abs(within1 - 0.6827)).toBeLessThan(0.01);
    expect(Math.abs(beyond3 - 0.0027)).toBeLessThan(0.0012);
    expect(v.every(Number.isFinite)).toBe(true);
    const m = stats(await read(kiln.randn([100_000], { seed: 9, mean: -5, std: 0.5 })));
    expect(Math.abs(m.mean + 5)).toBeLessThan(0.01);
    expect(Math.abs(m.std - 0.5)).toBeLessThan(0.01);
    await expectTensor(kiln.randn([2, 3], { std: 0, mean: 4 }), { shape: [2, 3], dtype: 'float32', values: new Array(6).fill(4), ...EXACT }, 'std 0');
  });

  it('randu stays within [low, high) and is uniform', async () => {
    const v = await read(kiln.randu([100_000], { seed: 77 }));
    const s = stats(v);
    expect(s.min).toBeGreaterThanOrEqual(0);
    expect(s.max).toBeLessThan(1);
    expect(Math.abs(s.mean - 0.5)).toBeLessThan(0.005);
    const bins = new Array(10).fill(0);
    for (const x of v) bins[Math.floor(x * 10)]++;
    for (const b of bins) expect(Math.abs(b / v.length - 0.1)).toBeLessThan(0.006);
    const w = await read(kiln.randu([50_000], { seed: 78, low: -3, high: 5 }));
    expect(stats(w).min).toBeGreaterThanOrEqual(-3);
    expect(stats(w).max).toBeLessThan(5);
    expect(Math.abs(stats(w).mean - 1)).toBeLessThan(0.05);
    await expectTensor(kiln.randu([0, 4]), { shape: [0, 4], values: [] });
  });

  it('randu never returns high, even where float32 rounding is coarse', async () => {
    // In [1e6, 1e6 + 1) float32 has only 16 values; low + (high - low) * u must not round up to high.
    const v = await read(kiln.randu([20_000], { seed: 1, low: 1e6, high: 1e6 + 1 }));
    const hits = v.filter((x) => x >= 1e6 + 1).length;
    expect(hits, `${hits} of ${v.length} samples equal high`).toBe(0);
    expect(stats(v).min).toBeGreaterThanOrEqual(1e6);
  });

  it('invalid creation arguments throw, naming the op', () => {
    expectThrows(() => kiln.tensor([[1, 2], [3]]), 'tensor', 'ragged');
    expectThrows(() => kiln.tensor([1, 2, 3], [2, 2]), 'tensor', '[2, 2]');
    expectThrows(() => kiln.tensor([1], undefined, 'float64' as kiln.DType), 'tensor', 'float64');
    expectThrows(() => kiln.arange(0, 5, 0), 'arange', 'step');
    expectThrows(() => kiln.arange(0, Infinity), 'arange');
    expectThrows(() => kiln.full([2], 1, 'float16' as kiln.DType), 'full', 'float16');
    expectThrows(() => kiln.randn([2], { std: -1 }), 'randn', 'std');
    expectThrows(() => kiln.randu([2], { low: 2, high: 1 }), 'randu', 'low');
    expectThrows(() => kiln.randn([-1]), 'randn', 'shape');
    expectThrows(() => kiln.full([2.5], 0), 'full', 'shape');
  });
});
