/**
 * W8A8 (int8 weights x int8 activations) on every CPU backend: linearW8A8 and conv2dW8A8 equal,
 * bit for bit, an independent JavaScript model of the same arithmetic (dynamic scale
 * max|v| / 127 per Linear input row and per conv input image, round half to even, exact integer
 * sums, float32 output scaling), on every native instruction path (KILN_INT8_PATH forces scalar and AVX2; unset takes the best, VNNI
 * here); integer inputs whose scales are exactly 1 check the integer sums alone; errors, NaN, and
 * the accuracy of a small MNIST MLP quantized to W8A8 (within 0.3 points of float32).
 */
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { nn } from '../../ts/index.js';
import { forEachBackend, QUANTIZED_ON_CPU_ONLY } from '../backends.js';
import { T, expectThrows, randIntND, randND, read } from '../helpers.js';
import { trainMnistMlp } from './mnist-mlp.js';

const f = Math.fround;

/** Rounding half to even (the kernels' `round_ties_even`). */
const roundEven = (v: number) => (Math.abs(v - Math.trunc(v)) === 0.5 ? 2 * Math.round(v / 2) : Math.round(v));

/** One activation vector quantized as the kernels do: [int8 values, float32 scale]. */
function quantizeVector(v: ArrayLike<number>): [number[], number] {
  let max = 0;
  let finite = true;
  for (let i = 0; i < v.length; i++) {
    finite &&= Number.isFinite(v[i]);
    max = Math.max(max, Math.abs(v[i]));
  }
  if (!finite) return [Array.from(v, () => 0), NaN];
  if (max === 0) return [Array.from(v, () => 0), 0];
  // A float32 division or product computed in float64 and rounded once is the float32 result.
  const inv = f(127 / max);
  return [Array.from(v, (x) => Math.min(127, Math.max(-127, roundEven(f(x * inv))))), f(max / 127)];
}

/** The integer sum times both scales, in float32 steps as the kernels (acc · xScale · wScale + bias). */
const output = (acc: number, xScale: number, wScale: number, bias: number) => f(f(f(f(acc) * xScale) * wScale) + bias);

function dotInt(a: number[], q: Int8Array, offset: number): number {
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc += a[i] * q[offset + i];
  return acc;
}

/** linearW8A8's result for x [n, k] (flat), q [o, k], scales [o], bias [o] or null. */
function linearReference(x: Float32Array, n: number, k: number, q: Int8Array, scales: Float32Array, bias: Float32Array | null): Float32Array {
  const o = scales.length;
  const out = new Float32Array(n * o);
  for (let i = 0; i < n; i++) {
    const [a, s] = quantizeVector(x.subarray(i * k, (i + 1) * k));
    for (let j = 0; j < o; j++) out[i * o + j] = output(dotInt(a, q, j * k), s, scales[j], bias?.[j] ?? 0);
  }
  return out;
}

interface ConvCase {
  shape: [number, number, number, number];
  out: number;
  kernel: [number, number];
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
  groups: number;
}

/** conv2dW8A8's result: each image quantized on its own (one scale), then exact patch sums. */
function convReference(x: Float32Array, c: ConvCase, q: Int8Array, scales: Float32Array, bias: Float32Array | null): { data: Float32Array; shape: number[] } {
  const [n, ch, h, w] = c.shape;
  const [kh, kw] = c.kernel;
  const oh = Math.floor((h + 2 * c.padding[0] - c.dilation[0] * (kh - 1) - 1) / c.stride[0]) + 1;
  const ow = Math.floor((w + 2 * c.padding[1] - c.dilation[1] * (kw - 1) - 1) / c.stride[1]) + 1;
  const gc = ch / c.groups;
  const gout = c.out / c.groups;
  const patch = gc * kh * kw;
  const out = new Float32Array(n * c.out * oh * ow);
  for (let b = 0; b < n; b++) {
    const [image, s] = quantizeVector(x.subarray(b * ch * h * w, (b + 1) * ch * h * w));
    for (let g = 0; g < c.groups; g++) {
      for (let y = 0; y < oh; y++) {
        for (let xx = 0; xx < ow; xx++) {
          const a: number[] = [];
          for (let ci = 0; ci < gc; ci++) {
            for (let ky = 0; ky < kh; ky++) {
              for (let kx = 0; kx < kw; kx++) {
                const iy = y * c.stride[0] - c.padding[0] + ky * c.dilation[0];
                const ix = xx * c.stride[1] - c.padding[1] + kx * c.dilation[1];
                const inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
                a.push(inside ? image[((g * gc + ci) * h + iy) * w + ix] : 0);
              }
            }
          }
          for (let oc = g * gout; oc < (g + 1) * gout; oc++) {
            out[((b * c.out + oc) * oh + y) * ow + xx] = output(dotInt(a, q, oc * patch), s, scales[oc], bias?.[oc] ?? 0);
          }
        }
      }
    }
  }
  return { data: out, shape: [n, c.out, oh, ow] };
}

/** The native instruction paths to force (the WASM module has one: portable code). */
const PATHS = ['scalar', 'avx2', undefined] as const;

function withPath<R>(path: string | undefined, fn: () => R): R {
  if (path === undefined) delete process.env.KILN_INT8_PATH;
  else process.env.KILN_INT8_PATH = path;
  try {
    return fn();
  } finally {
    delete process.env.KILN_INT8_PATH;
  }
}

let mnist: kiln.data.Mnist;

beforeAll(() => {
  mnist = kiln.data.loadMnist();
});

afterEach(() => {
  delete process.env.KILN_INT8_PATH;
});

forEachBackend((backend) => {
  const paths = backend === 'native' ? PATHS : ([undefined] as const);

  it('linearW8A8 equals the reference arithmetic bit for bit: random, odd sizes, zero rows, on every path', async () => {
    // k not a multiple of 4, 16 or 64; rows and columns not multiples of the 4x4 tile.
    for (const [n, k, o, seed] of [[1, 784, 512, 1], [5, 3, 7, 2], [9, 65, 13, 3], [4, 130, 4, 4], [2, 1, 1, 5], [256, 77, 6, 6]]) {
      const xa = randND([n, k], seed, -3, 3);
      if (n > 2) xa.data.fill(0, k, 2 * k); // an all-zero row: scale 0, output = bias
      const x = T(xa);
      const { q, scales } = kiln.quantizeInt8(T(randND([o, k], seed + 10, -0.5, 0.5)));
      const bias = T(randND([o], seed + 20));
      const want = linearReference(Float32Array.from(xa.data), n, k, await read(q) as unknown as Int8Array, await read(scales), await read(bias));
      for (const path of paths) {
        const got = withPath(path, () => kiln.linearW8A8(x, q, scales, bias));
        expect(got.shape).toEqual([n, o]);
        expect(Array.from(await read(got)), `n${n} k${k} o${o} path ${path ?? 'best'}`).toEqual(Array.from(want));
        got.dispose();
      }
      kiln.dispose([x, q, scales, bias]);
    }
  });

  it('integer inputs with max |x| = 127 give exact integer sums (scales 1), including 127 x -127 extremes', async () => {
    const [n, k, o] = [6, 131, 9];
    const xa = randIntND([n, k], 7, -127, 128);
    const wa = randIntND([o, k], 8, -127, 128);
    for (let i = 0; i < n; i++) xa.data[i * k] = i % 2 === 0 ? 127 : -127; // every row reaches 127
    for (let j = 0; j < o; j++) wa.data[j * k + 1] = -127;
    xa.data.fill(127, 0, k); // row 0: all 127
    wa.data.fill(-127, 0, k); // weight row 0: all -127 -> -127·127·131 at (0, 0)
    const x = T(xa);
    const { q, scales } = kiln.quantizeInt8(T(wa));
    expect(Array.from(await read(scales))).toEqual(Array(o).fill(1));
    for (const path of paths) {
      const got = await read(withPath(path, () => kiln.linearW8A8(x, q, scales)));
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < o; j++) {
          let acc = 0;
          for (let c = 0; c < k; c++) acc += xa.data[i * k + c] * wa.data[j * k + c];
          expect(got[i * o + j], `(${i}, ${j}) path ${path ?? 'best'}`).toBe(acc);
        }
      }
      expect(got[0]).toBe(-127 * 127 * k);
    }
    kiln.dispose([x, q, scales]);
  });

  it('conv2dW8A8 and QuantizedConv2d equal the reference per-image arithmetic (stride, padding, dilation, groups)', async () => {
    const cases: ConvCase[] = [
      { shape: [2, 3, 9, 8], out: 5, kernel: [3, 3], stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1 },
      { shape: [1, 4, 10, 7], out: 6, kernel: [3, 2], stride: [2, 1], padding: [0, 1], dilation: [1, 2], groups: 2 },
      { shape: [2, 16, 6, 6], out: 8, kernel: [1, 1], stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1 },
      { shape: [1, 24, 7, 7], out: 32, kernel: [3, 3], stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1 },
    ];
    for (const [i, c] of cases.entries()) {
      const xa = randND(c.shape, 30 + i, -2, 2);
      const x = T(xa);
      const patch = (c.shape[1] / c.groups) * c.kernel[0] * c.kernel[1];
      const { q, scales } = kiln.quantizeInt8(T(randND([c.out, patch], 40 + i)));
      const bias = T(randND([c.out], 50 + i));
      const want = convReference(Float32Array.from(xa.data), c, await read(q) as unknown as Int8Array, await read(scales), await read(bias));
      const options = { stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups, bias };
      for (const path of paths) {
        const got = withPath(path, () => kiln.conv2dW8A8(x, q, scales, c.kernel, options));
        expect(got.shape).toEqual(want.shape);
        expect(Array.from(await read(got)), `case ${i} path ${path ?? 'best'}`).toEqual(Array.from(want.data));
        got.dispose();
      }
      // The layer with int8 activations runs the same op.
      const conv = new nn.Conv2d(c.shape[1], c.out, c.kernel, { stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups, seed: 60 + i });
      const layer = new nn.QuantizedConv2d(conv, { bits: 8, activations: 'int8' });
      expect(layer.activations).toBe('int8');
      const direct = kiln.conv2dW8A8(x, layer.weight, layer.scales, c.kernel, { ...options, bias: layer.bias });
      expect(Array.from(await read(kiln.noGrad(() => layer.forward(x))))).toEqual(Array.from(await read(direct)));
      kiln.dispose([x, q, scales, bias, direct]);
      layer.dispose();
      conv.dispose();
    }
  });

  it('a row holding NaN or inf gives NaN outputs in that row only; errors name the op, shapes and dtypes', async () => {
    const x = kiln.tensor(Float32Array.from([1, NaN, 2, 0.5, -1, 0.25, Infinity, 0, 0]), [3, 3]);
    const { q, scales } = kiln.quantizeInt8(T(randND([2, 3], 70)));
    const y = await read(kiln.linearW8A8(x, q, scales));
    expect(Array.from(y.slice(0, 2)).every(Number.isNaN)).toBe(true);
    expect(Array.from(y.slice(2, 4)).every(Number.isFinite)).toBe(true);
    expect(Array.from(y.slice(4, 6)).every(Number.isNaN)).toBe(true);
    expectThrows(() => kiln.linearW8A8(kiln.zeros([2, 4]), q, scales), 'linearW8A8', '[2, 4]', '[2, 3]');
    expectThrows(() => kiln.conv2dW8A8(kiln.zeros([1, 2, 4, 4]), q, scales, 3), 'conv2dW8A8', '[1, 2, 4, 4]');
    expectThrows(() => kiln.quantize(new nn.Linear(3, 2), { bits: 4, activations: 'int8' }), 'quantize', 'int8 activations need bits 8');
    expectThrows(() => new nn.QuantizedLinear(new nn.Linear(3, 2), { bits: 8, activations: 'int16' as 'int8' }), 'QuantizedLinear', "'int8' or 'float32'", 'int16');
    const tracked = kiln.zeros([1, 3]).setRequiresGrad();
    expectThrows(() => kiln.linearW8A8(tracked, q, scales), 'linearW8A8', 'inference-only');
    kiln.dispose([x, q, scales, tracked]);
  });

  it('a small MNIST MLP quantized to W8A8 stays within 0.3 points of float32', async () => {
    const { model, make, accuracy, dispose } = trainMnistMlp(mnist, [11, 12]);
    const f32 = accuracy(model);
    expect(f32, 'the float model learned').toBeGreaterThan(85);
    const quantized = make();
    quantized.loadStateDict(model.stateDict());
    kiln.quantize(quantized, { bits: 8, activations: 'int8' });
    expect(kiln.quantizationConfig(quantized)?.activations).toBe('int8');
    const a8 = accuracy(quantized);
    console.log(`[${backend}] MNIST MLP accuracy: f32 ${f32}, W8A8 ${a8}`);
    expect(Math.abs(a8 - f32), `W8A8 ${a8} vs f32 ${f32}`).toBeLessThanOrEqual(0.3);
    quantized.dispose();
    dispose();
  }, 60_000);
}, { except: { gpu: QUANTIZED_ON_CPU_ONLY } });

afterAll(() => {
  mnist = undefined as unknown as kiln.data.Mnist;
});

