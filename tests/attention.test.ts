/**
 * kiln.attention, the fused tiled kernel, against the same attention written from primitive ops
 * (matmul, masking with where/add, softmax, matmul), which materializes the Tq×Tk scores: outputs
 * and the gradients of q, k and v. Also finite differences, rows that see no key, dropout, bad
 * input, and the working memory: linear in the sequence length, where the composition's is quadratic.
 */
import { expect, it } from 'vitest';
import * as kiln from '../ts/index.js';
import type { Tensor } from '../ts/index.js';
import { forEachBackend } from './backends.js';
import { assertClose, expectThrows, randND, read, T } from './helpers.js';
import { gradCheck, uniform } from './gradcheck.js';

interface Options {
  causal?: boolean;
  keyPaddingMask?: Tensor;
  scale?: number;
}

/** Attention from primitive ops: the reference the fused kernel must agree with. */
function composed(q: Tensor, k: Tensor, v: Tensor, options: Options = {}): Tensor {
  const [batch, , tq, d] = q.shape;
  const tk = k.shape[2];
  let s = q.matmul(k, false, true).mul(options.scale ?? 1 / Math.sqrt(d));
  const mask = options.keyPaddingMask;
  if (mask !== undefined) {
    const bias = mask.dtype === 'bool' ? kiln.where(mask, -Infinity, 0) : mask;
    s = s.add(bias.reshape([batch, 1, 1, tk]));
  }
  if (options.causal) {
    const i = kiln.arange(0, tq).reshape([tq, 1]);
    const j = kiln.arange(0, tk).reshape([1, tk]);
    s = kiln.where(j.lessEqual(i.add(tk - tq)), s, -Infinity);
  }
  return s.softmax(-1).matmul(v);
}

/** Padding: batch b pads its last b + 1 keys (never key 0, so every row sees a key). */
function paddingMask(batch: number, tk: number, additive = false): Tensor {
  const pads = (b: number, j: number) => j > 0 && j + b + 1 >= tk;
  if (!additive) {
    return kiln.tensor(Uint8Array.from({ length: batch * tk }, (_, i) => (pads(Math.floor(i / tk), i % tk) ? 1 : 0)), [batch, tk], 'bool');
  }
  return kiln.tensor(Float32Array.from({ length: batch * tk }, (_, i) => (pads(Math.floor(i / tk), i % tk) ? -Infinity : (i % tk) * -0.1)), [batch, tk]);
}

interface Case {
  label: string;
  shape: [number, number, number, number, number, number]; // batch, heads, Tq, Tk, D, Dv
  causal?: boolean;
  mask?: 'bool' | 'additive';
  scale?: number;
}

const cases: Case[] = [
  { label: 'plain', shape: [2, 3, 5, 7, 4, 6] },
  { label: 'causal, Tq = Tk', shape: [2, 2, 9, 9, 8, 8], causal: true },
  { label: 'causal, Tq < Tk (queries over a longer context)', shape: [1, 2, 4, 11, 8, 5], causal: true },
  { label: 'bool padding mask, Tq != Tk', shape: [3, 2, 6, 10, 4, 4], mask: 'bool' },
  { label: 'additive padding mask + causal + explicit scale', shape: [2, 2, 8, 8, 6, 3], mask: 'additive', causal: true, scale: 0.3 },
  { label: 'several tiles in both directions (Tq 133, Tk 150)', shape: [1, 2, 133, 150, 16, 8], causal: true, mask: 'bool' },
  { label: 'several tiles, no mask (Tq 150, Tk 133)', shape: [2, 1, 150, 133, 8, 16] },
];

forEachBackend(() => {
  for (const c of cases) {
    it(`matches the composition from primitive ops, output and gradients: ${c.label}`, async () => {
      const before = kiln.memory().numTensors;
      const [batch, heads, tq, tk, d, dv] = c.shape;
      const q = T(randND([batch, heads, tq, d], 1)).setRequiresGrad();
      const k = T(randND([batch, heads, tk, d], 2)).setRequiresGrad();
      const v = T(randND([batch, heads, tk, dv], 3)).setRequiresGrad();
      const w = T(randND([batch, heads, tq, dv], 4));
      const mask = c.mask === undefined ? undefined : paddingMask(batch, tk, c.mask === 'additive');
      const options = { causal: c.causal, keyPaddingMask: mask, scale: c.scale };
      const run = async (f: typeof composed) => {
        const result = kiln.tidy(() => {
          const out = f(q, k, v, options);
          out.mul(w).sum().backward();
          return [out, q.grad!, k.grad!, v.grad!];
        });
        const data = await Promise.all(result.map(read));
        kiln.dispose(result);
        for (const t of [q, k, v]) t.zeroGrad();
        return data;
      };
      const fused = await run((a, b, e, o) => kiln.attention(a, b, e, o));
      const reference = await run(composed);
      ['output', 'dq', 'dk', 'dv'].forEach((name, i) => assertClose(fused[i], reference[i], { atol: 2e-5, rtol: 2e-4 }, name));
      kiln.dispose([q, k, v, w, ...(mask ? [mask] : [])]);
      expect(kiln.memory().numTensors).toBe(before);
    });
  }

  it('reads split heads in place: a [B, T, H·D] projection viewed as [B, H, T, D] gives the same result', async () => {
    const [batch, t, heads, d] = [2, 12, 3, 4];
    const x = T(randND([batch, t, heads * d], 5));
    const split = x.reshape([batch, t, heads, d]).transpose([0, 2, 1, 3]);
    const fused = kiln.attention(split, split, split, { causal: true });
    const dense = kiln.attention(split.contiguous(), split.contiguous(), split.contiguous(), { causal: true });
    assertClose(await read(fused), await read(dense), { atol: 0, rtol: 0 }, 'strided vs contiguous');
    // Merging the heads back allocates nothing: the output is laid out [B, T, H, D] in memory.
    const buffers = kiln.memory().numBuffers;
    const merged = fused.transpose([0, 2, 1, 3]).reshape([batch, t, heads * d]);
    expect(kiln.memory().numBuffers, 'transpose + reshape of the output is a view').toBe(buffers);
    kiln.dispose([x, split, fused, dense, merged]);
  });

  it('finite-difference gradient check with causal and padding masks, Tq != Tk', async () => {
    const mask = kiln.tensor(Uint8Array.from([0, 0, 0, 1, 1, 0, 0, 0, 0, 1]), [2, 5], 'bool');
    await gradCheck('attention', [uniform([2, 2, 3, 3], 11), uniform([2, 2, 5, 3], 12), uniform([2, 2, 5, 2], 13)], ([q, k, v]) =>
      kiln.attention(q, k, v, { causal: true, keyPaddingMask: mask }),
    );
    mask.dispose();
  });

  it('a query that sees no key gets output 0 and gradient 0, never NaN', async () => {
    // Batch 1 pads every key; causal with Tq > Tk leaves the first Tq - Tk queries without keys.
    const mask = kiln.tensor(Uint8Array.from([0, 0, 0, 0, 1, 1, 1, 1]), [2, 4], 'bool');
    const q = T(randND([2, 1, 6, 3], 21)).setRequiresGrad();
    const k = T(randND([2, 1, 4, 3], 22)).setRequiresGrad();
    const v = T(randND([2, 1, 4, 3], 23)).setRequiresGrad();
    const [out, dq] = kiln.tidy(() => {
      const o = kiln.attention(q, k, v, { causal: true, keyPaddingMask: mask });
      o.sum().backward();
      return [o, q.grad!];
    });
    const o = await read(out);
    const g = await read(dq);
    expect(o.every(Number.isFinite) && g.every(Number.isFinite)).toBe(true);
    expect(o.slice(18).every((x) => x === 0), 'batch 1: all keys padded').toBe(true);
    expect(g.slice(18).every((x) => x === 0)).toBe(true);
    expect(o.slice(0, 6).every((x) => x === 0), 'batch 0: queries 0 and 1 see no key').toBe(true);
    expect(o.slice(6, 18).every((x) => x !== 0)).toBe(true);
    kiln.dispose([mask, q, k, v, out, dq]);
  });

  it('dropout: seeded, drops about p of the weights, scales survivors by 1/(1 - p), off at p = 0', async () => {
    const q = T(randND([1, 2, 32, 8], 31));
    const k = T(randND([1, 2, 32, 8], 32));
    const eye = kiln.tidy(() => kiln.eye(32).reshape([1, 1, 32, 32]).expand([1, 2, 32, 32])); // output rows = the weights
    // Each output read and freed at once: garbage left to the GC would be freed in a later test
    // and upset its tensor count.
    const attend = async (options?: { dropout: number; seed?: number }) => {
      const out = kiln.attention(q, k, eye, options);
      const values = await read(out);
      out.dispose();
      return values;
    };
    const weights = await attend();
    const a = await attend({ dropout: 0.2, seed: 7 });
    expect(await attend({ dropout: 0.2, seed: 7 })).toEqual(a);
    expect(await attend({ dropout: 0.2, seed: 8 })).not.toEqual(a);
    expect(await attend({ dropout: 0, seed: 7 })).toEqual(weights);
    const dropped = a.filter((x) => x === 0).length / a.length;
    expect(Math.abs(dropped - 0.2), `dropped fraction ${dropped}`).toBeLessThan(0.03);
    const kept = a.map((x, i) => (x === 0 ? 0 : weights[i] / 0.8));
    assertClose(a, kept, { atol: 1e-6, rtol: 1e-5 }, 'kept weights scaled by 1/(1 - p)');
    kiln.setSeed(3);
    const first = await attend({ dropout: 0.2 });
    kiln.setSeed(3);
    expect(await attend({ dropout: 0.2 }), 'the global seed makes the mask reproducible').toEqual(first);
    kiln.dispose([q, k, eye]);
  });

  it('bad input: errors name the op, the shapes and the dtypes', () => {
    const before = kiln.memory().numTensors;
    kiln.tidy(() => {
      const q = kiln.zeros([2, 2, 3, 4]);
      const k = kiln.zeros([2, 2, 5, 4]);
      const v = kiln.zeros([2, 2, 5, 6]);
      expectThrows(() => kiln.attention(kiln.zeros([2, 3, 4]), k, v), 'attention', '4-D', 'q float32 [2, 3, 4]');
      expectThrows(() => kiln.attention(q, kiln.zeros([2, 2, 5, 3]), v), 'attention', 'feature size', 'k float32 [2, 2, 5, 3]');
      expectThrows(() => kiln.attention(q, k, kiln.zeros([2, 2, 4, 6])), 'attention', 'number of keys', 'v float32 [2, 2, 4, 6]');
      expectThrows(() => kiln.attention(q, kiln.zeros([1, 2, 5, 4]), v), 'attention', 'batch and heads', '[1, 2, 5, 4]');
      expectThrows(() => kiln.attention(kiln.zeros([2, 2, 3, 4], 'int32'), k, v), 'attention', 'float32', 'q int32 [2, 2, 3, 4]');
      expectThrows(() => kiln.attention(q, k, v, { keyPaddingMask: kiln.zeros([2, 3], 'bool') }), 'attention', 'keyPaddingMask', '[2, 5]', 'bool [2, 3]');
      expectThrows(() => kiln.attention(q, k, v, { keyPaddingMask: kiln.zeros([2, 5], 'int32') }), 'attention', 'keyPaddingMask', 'int32 [2, 5]');
      // The GPU does not scan a float mask for NaN (that would cost a readback per call).
      if (kiln.getBackend() !== 'gpu') expectThrows(() => kiln.attention(q, k, v, { keyPaddingMask: kiln.full([2, 5], NaN) }), 'attention', 'NaN at [0, 0]');
      expectThrows(() => kiln.attention(q, k, v, { keyPaddingMask: kiln.zeros([2, 5]).setRequiresGrad() }), 'attention', 'requires gradients');
      expectThrows(() => kiln.attention(q, k, v, { scale: Infinity }), 'attention', 'scale');
      expectThrows(() => kiln.attention(q, k, v, { dropout: 1 }), 'attention', 'dropout must be in [0, 1)');
      expectThrows(() => kiln.attention(q, k, v, { dropout: -0.1 }), 'attention', 'dropout');
      expectThrows(() => kiln.attention(q, k, v, { dropout: 0.1, seed: 1.5 }), 'attention', 'seed');
      expectThrows(() => kiln.attention(q, k, [1, 2] as unknown as Tensor), 'attention', "'v'");
    });
    expect(kiln.memory().numTensors, 'failed calls leave nothing behind').toBe(before);
  });

  it("working memory is linear in the sequence length (fused) where the composition's is quadratic", () => {
    const [heads, d] = [2, 16];
    /** Peak bytes above the inputs during one forward + backward of length t. */
    const peakOf = (t: number, f: (q: Tensor, k: Tensor, v: Tensor) => Tensor): number => {
      const [q, k, v] = [1, 2, 3].map((s) => kiln.randn([1, heads, t, d], { seed: s }).setRequiresGrad());
      const base = kiln.memory().numBytes;
      kiln.resetPeakMemory();
      kiln.tidy(() => {
        f(q, k, v).sum().backward();
      });
      const peak = kiln.peakMemory().numBytes - base;
      kiln.dispose([q, k, v]);
      return peak;
    };
    const fused = (q: Tensor, k: Tensor, v: Tensor) => kiln.attention(q, k, v, { causal: true });
    const reference = (q: Tensor, k: Tensor, v: Tensor) => composed(q, k, v, { causal: true });
    const [fused256, fused1024] = [peakOf(256, fused), peakOf(1024, fused)];
    const [composed256, composed1024] = [peakOf(256, reference), peakOf(1024, reference)];
    const inputBytes = 3 * heads * 1024 * d * 4;
    // 4x the length: about 4x the memory for the fused op, about 16x for the composition.
    expect(fused1024 / fused256, `fused: ${fused256} -> ${fused1024} bytes`).toBeLessThan(4.5);
    expect(composed1024 / composed256, `composed: ${composed256} -> ${composed1024} bytes`).toBeGreaterThan(10);
    expect(fused1024, 'fused working memory at T = 1024 stays within a few copies of the inputs').toBeLessThan(4 * inputBytes);
    expect(composed1024, 'the composition holds several T×T score matrices').toBeGreaterThan(3 * heads * 1024 * 1024 * 4);
  });
});
