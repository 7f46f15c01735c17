/**
 * Weight-only quantization on every backend: round-trip error bounds against the definition,
 * linear kernels against matmul with the dequantized weights, kiln.quantize on Sequential and
 * custom modules, save/load through safetensors, errors, and the accuracy of a small MNIST MLP
 * after int8 and int4 quantization.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { nn, type Tensor } from '../../ts/index.js';
import { forEachBackend, QUANTIZED_ON_CPU_ONLY } from '../backends.js';
import { T, assertClose, expectThrows, randND, read } from '../helpers.js';
import { trainMnistMlp } from './mnist-mlp.js';

/** Largest |w| of each group of `size` consecutive elements of each row of an [O, I] array. */
function groupMax(w: Float32Array, rows: number, cols: number, size: number): number[][] {
  return Array.from({ length: rows }, (_, o) =>
    Array.from({ length: Math.ceil(cols / size) }, (_, g) => {
      let m = 0;
      for (let i = g * size; i < Math.min(cols, (g + 1) * size); i++) m = Math.max(m, Math.abs(w[o * cols + i]));
      return m;
    }),
  );
}

/** The reference the quantized linear must match: x·Wᵀ + b with W dequantized, through matmul. */
function reference(x: Tensor, w: Tensor, b: Tensor | null): Tensor {
  const y = kiln.matmul(x, w, false, true);
  return b === null ? y : y.add(b);
}

let mnist: kiln.data.Mnist;

beforeAll(() => {
  mnist = kiln.data.loadMnist();
});

forEachBackend((backend) => {
  it('int8 round trip: per-row scale max|w|/127, error <= scale/2 per element', async () => {
    const [o, i] = [19, 45];
    const w = randND([o, i], 1, -3, 3);
    const { q, scales } = kiln.quantizeInt8(T(w));
    expect([q.dtype, q.shape, scales.shape]).toEqual(['int8', [o, i], [o]]);
    const d = await read(kiln.dequantizeInt8(q, scales));
    const s = await read(scales);
    const max = groupMax(w.data, o, i, i);
    for (let r = 0; r < o; r++) {
      expect(s[r]).toBeCloseTo(max[r][0] / 127, 6);
      for (let c = 0; c < i; c++) expect(Math.abs(d[r * i + c] - w.data[r * i + c])).toBeLessThanOrEqual((s[r] / 2) * (1 + 1e-5));
    }
    const qs = Array.from(q.dataSync());
    expect(Math.min(...qs)).toBeGreaterThanOrEqual(-127);
    expect(Math.max(...qs.map(Math.abs))).toBe(127);
  });

  it('int4 round trip: per-block scale max|block|/7, error <= scale/2, two values per byte', async () => {
    for (const [i, block] of [[70, 32], [33, 8]]) {
      const o = 6;
      const w = randND([o, i], 2 + i, -1, 1);
      const { q, scales } = kiln.quantizeInt4(T(w), block);
      const blocks = Math.ceil(i / block);
      expect([q.dtype, q.shape, scales.shape]).toEqual(['int8', [o, Math.ceil(i / 2)], [o, blocks]]);
      const d = await read(kiln.dequantizeInt4(q, scales, i, block));
      const s = await read(scales);
      const max = groupMax(w.data, o, i, block);
      for (let r = 0; r < o; r++) {
        for (let c = 0; c < i; c++) {
          const scale = s[r * blocks + Math.floor(c / block)];
          expect(scale).toBeCloseTo(max[r][Math.floor(c / block)] / 7, 6);
          expect(Math.abs(d[r * i + c] - w.data[r * i + c])).toBeLessThanOrEqual((scale / 2) * (1 + 1e-5));
        }
      }
    }
    // Layout: element 2j is the low nibble of byte j (two's complement), 2j+1 the high one.
    const { q } = kiln.quantizeInt4(T({ data: new Float32Array([1, -2, 7, -7, 3]), shape: [1, 5] }), 8);
    expect(Array.from(q.dataSync(), (b) => b & 0xff)).toEqual([0xe1, 0x97, 0x03]);
  });

  it('linearQ8 / linearQ4 match matmul with the dequantized weights (few rows and many)', async () => {
    for (const [n, i, o] of [[1, 100, 37], [3, 64, 130], [50, 96, 70]]) {
      const x = T(randND([n, i], 10 + n));
      const w = T(randND([o, i], 11 + o));
      const b = T(randND([o], 12));
      const q8 = kiln.quantizeInt8(w);
      assertClose(await read(kiln.linearQ8(x, q8.q, q8.scales, b)), await read(reference(x, kiln.dequantizeInt8(q8.q, q8.scales), b)), { atol: 1e-4, rtol: 1e-4 });
      assertClose(await read(kiln.linearQ8(x, q8.q, q8.scales)), await read(reference(x, kiln.dequantizeInt8(q8.q, q8.scales), null)), { atol: 1e-4, rtol: 1e-4 });
      const q4 = kiln.quantizeInt4(w);
      assertClose(await read(kiln.linearQ4(x, q4.q, q4.scales, b)), await read(reference(x, kiln.dequantizeInt4(q4.q, q4.scales, i), b)), { atol: 1e-4, rtol: 1e-4 });
    }
  });

  it('quantize replaces Linears in Sequential and custom modules; forward matches the dequantized model', async () => {
    class Net extends nn.Module {
      readonly stem = new nn.Sequential(new nn.Linear(12, 16, { seed: 1 }), new nn.ReLU());
      readonly heads = [new nn.Linear(16, 3, { seed: 2 }), new nn.Linear(16, 3, { seed: 3, bias: false })];
      forward(x: Tensor): Tensor {
        const h = this.stem.forward(x);
        return this.heads[0].forward(h).add(this.heads[1].forward(h));
      }
    }
    for (const bits of [8, 4] as const) {
      const net = new Net();
      const x = T(randND([5, 12], 20));
      // The float model with each weight replaced by its dequantized value is the reference.
      const expected = kiln.noGrad(() => {
        for (const [name, p] of net.namedParameters()) {
          if (!name.endsWith('weight')) continue;
          const { q, scales } = bits === 8 ? kiln.quantizeInt8(p) : kiln.quantizeInt4(p);
          net.loadStateDict({ [name]: bits === 8 ? kiln.dequantizeInt8(q, scales) : kiln.dequantizeInt4(q, scales, p.shape[1]) }, { strict: false });
        }
        return net.forward(x);
      });
      const before = net.heads[0];
      // Weight-only (float activations, the default; 'int8' also rounds the input: quantized-w8a8.test.ts).
      kiln.quantize(net, { bits, activations: 'float32' });
      expect(net.stem.layers[0]).toBeInstanceOf(nn.QuantizedLinear);
      expect(net.heads[1]).toBeInstanceOf(nn.QuantizedLinear);
      expect(before.weight.isDisposed, 'the replaced Linear is freed').toBe(true);
      expect(net.parameters()).toHaveLength(0);
      expect(kiln.quantizationConfig(net)).toEqual({ bits, block: bits === 8 ? 0 : 32, activations: 'float32' });
      // Quantizing the dequantized weights again gives the same integers, so outputs agree to rounding.
      assertClose(await read(kiln.noGrad(() => net.forward(x))), await read(expected), { atol: 1e-4, rtol: 1e-4 });
      net.dispose();
    }
  });

  it('a quantized model saves to safetensors (int8 tensors) and loads into a freshly quantized one', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `kiln-quant-${backend}-`));
    try {
      const build = () => new nn.Sequential(new nn.Linear(20, 9, { seed: 5 }), new nn.Tanh(), new nn.Linear(9, 4, { seed: 6 }));
      const model = kiln.quantize(build(), { bits: 4 }) as nn.Sequential;
      const x = T(randND([3, 20], 30));
      const y = await read(model.forward(x));
      kiln.io.saveModel(dir, { stateDict: model.stateDict(), config: { quantization: { ...kiln.quantizationConfig(model)! } } });
      // The reported config is accepted back, int8 (block 0) included.
      kiln.quantize(new nn.Linear(3, 3), kiln.quantizationConfig(kiln.quantize(new nn.Linear(3, 3), { bits: 8 }))!).dispose();
      const loaded = kiln.io.loadModel(dir);
      expect(loaded.stateDict['0.weight'].dtype).toBe('int8');
      const cfg = loaded.config.quantization as unknown as nn.QuantizationConfig;
      const fresh = kiln.quantize(new nn.Sequential(new nn.Linear(20, 9, { seed: 99 }), new nn.Tanh(), new nn.Linear(9, 4, { seed: 98 })), cfg) as nn.Sequential;
      expect(await read(fresh.forward(x))).not.toEqual(y);
      fresh.loadStateDict(loaded.stateDict);
      expect(await read(fresh.forward(x))).toEqual(y);
      kiln.dispose(loaded.stateDict);
      model.dispose();
      fresh.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('errors name the op, shapes and dtypes; gradients are refused, not dropped', () => {
    const w = T(randND([4, 8], 40));
    const { q, scales } = kiln.quantizeInt8(w);
    expectThrows(() => kiln.linearQ8(T(randND([2, 7], 41)), q, scales), 'linearQ8', '[4, 8]', '[2, 7]');
    expectThrows(() => kiln.linearQ8(T(randND([2, 8], 41)), w, scales), 'linearQ8', 'int8', 'float32 [4, 8]');
    expectThrows(() => kiln.linearQ4(T(randND([2, 8], 41)), q, scales), 'linearQ4', 'packed');
    expectThrows(() => kiln.quantizeInt8(q), 'quantizeInt8', 'int8 [4, 8]');
    expectThrows(() => kiln.quantizeInt4(w, 0), 'quantizeInt4', 'block');
    expectThrows(() => kiln.quantizeInt8(T({ data: new Float32Array([1, NaN]), shape: [1, 2] })), 'quantizeInt8', 'non-finite');
    expectThrows(() => kiln.quantize(new nn.Linear(2, 2), { bits: 3 as 8 }), 'quantize', 'bits must be 8 or 4');
    const x = T(randND([2, 8], 42)).setRequiresGrad();
    expectThrows(() => kiln.linearQ8(x, q, scales), 'linearQ8', 'inference-only', 'noGrad');
    expect(kiln.noGrad(() => kiln.linearQ8(x, q, scales)).requiresGrad).toBe(false);
  });

  it('QuantizedConv2d equals conv2d with the dequantized weights (stride, padding, groups), int8 and int4', async () => {
    const conv = new nn.Conv2d(4, 6, 3, { stride: 2, padding: 'same', groups: 2, seed: 3 });
    const x = kiln.randn([2, 4, 9, 7], { seed: 4 });
    for (const bits of [8, 4] as const) {
      const q = new nn.QuantizedConv2d(conv, { bits, block: 8, activations: 'float32' });
      const rows = bits === 8 ? kiln.dequantizeInt8(q.weight, q.scales) : kiln.dequantizeInt4(q.weight, q.scales, 18, 8);
      const want = kiln.conv2d(x, rows.reshape([6, 2, 3, 3]), { stride: 2, padding: 'same', groups: 2, bias: conv.bias! });
      const got = q.forward(x);
      expect(got.shape).toEqual(want.shape);
      assertClose(await read(got), await read(want), { atol: 1e-6, rtol: 1e-6 }, `int${bits}`);
      // The quantized weights are close to the float ones: error <= half a step of each row's scale.
      const w = await read(conv.weight);
      const dq = await read(rows);
      const worst = Math.max(...w.map((v, i) => Math.abs(v - dq[i])));
      const scaleMax = Math.max(...(await read(q.scales)));
      expect(worst).toBeLessThanOrEqual(scaleMax / 2 + 1e-7);
      kiln.dispose([rows, want, got]);
      q.dispose();
    }
    expectThrows(() => new nn.QuantizedConv2d(conv, { bits: 8 }).forward(kiln.zeros([1, 3, 5, 5])), 'QuantizedConv2d', '[1, 3, 5, 5]');
    kiln.dispose([x]);
    conv.dispose();
  });

  it('quantize swaps the Conv2d and Linear layers of a CNN; it saves and loads', async () => {
    const make = () =>
      new nn.Sequential(new nn.Conv2d(1, 4, 3, { padding: 1, seed: 1 }), new nn.ReLU(), new nn.MaxPool2d(2), new nn.Flatten(), new nn.Linear(4 * 4 * 4, 3, { seed: 2 }));
    const model = kiln.quantize(make(), { bits: 8 }) as nn.Sequential;
    expect(model.layers[0]).toBeInstanceOf(nn.QuantizedConv2d);
    expect(model.layers[4]).toBeInstanceOf(nn.QuantizedLinear);
    // W8A8 by default on both CPU backends (on WASM since its SIMD128 int8 kernels).
    expect(kiln.quantizationConfig(model)).toEqual({ bits: 8, block: 0, activations: 'int8' });
    const x = kiln.randn([2, 1, 8, 8], { seed: 5 });
    const before = await read(model.forward(x));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-qcnn-'));
    kiln.saveModel(dir, { stateDict: model.stateDict(), config: { quantization: kiln.quantizationConfig(model) } });
    const loaded = kiln.quantize(make(), { bits: 8 });
    loaded.loadStateDict(kiln.loadModel(dir).stateDict);
    expect(await read(loaded.forward(x))).toEqual(before);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a small MNIST MLP keeps its accuracy: int8 within 0.5 points, int4 within 2', async () => {
    const { model, make, accuracy, dispose } = trainMnistMlp(mnist, [1, 2]);
    const f32 = accuracy(model);
    expect(f32, 'the float model learned').toBeGreaterThan(85);
    // Copies of the trained model through its state dict, quantized in place.
    const copy = (bits: 8 | 4) => {
      const m = make();
      m.loadStateDict(model.stateDict());
      return kiln.quantize(m, { bits });
    };
    const q8 = copy(8);
    const q4 = copy(4);
    const [a8, a4] = [accuracy(q8), accuracy(q4)];
    console.log(`[${backend}] MNIST MLP accuracy: f32 ${f32}, int8 ${a8}, int4 ${a4}`);
    expect(Math.abs(a8 - f32), `int8 ${a8} vs f32 ${f32}`).toBeLessThanOrEqual(0.5);
    expect(Math.abs(a4 - f32), `int4 ${a4} vs f32 ${f32}`).toBeLessThanOrEqual(2);
    for (const m of [q8, q4]) m.dispose();
    dispose();
  }, 60_000);
}, { except: { gpu: QUANTIZED_ON_CPU_ONLY } });

afterAll(() => {
  mnist = undefined as unknown as kiln.data.Mnist;
});
