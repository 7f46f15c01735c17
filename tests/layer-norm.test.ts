/**
 * kiln.layerNorm (crates/kiln-core/src/ops/layer_norm.rs): the fused kernel against the formula
 * computed in float64, y = (x − mean)/√(var + eps)·w + b over the dims from `axis` on with the
 * biased variance (PyTorch's F.layer_norm, ONNX's LayerNormalization); rows far from zero (where
 * E[x²] − E[x]² would cancel), strided inputs, no weight or bias, its gradients against finite
 * differences, and the errors.
 */
import { describe, expect, it } from 'vitest';
import * as kiln from '../ts/index.js';
import { forEachBackend } from './backends.js';
import { gradCheck } from './gradcheck.js';
import { assertClose, expectEveryTestToFreeItsTensors, expectThrows, randND, read, T } from './helpers.js';
import type { ND } from './reference.js';

/** The formula in float64: rows of the dims from `axis` on. */
function reference(x: ND, axis: number, eps: number, w?: ND, b?: ND): number[] {
  const d = x.shape.slice(axis).reduce((p, n) => p * n, 1);
  const out: number[] = [];
  for (let r = 0; r < x.data.length / d; r++) {
    const row = Array.from(x.data.slice(r * d, (r + 1) * d));
    const mean = row.reduce((s, v) => s + v, 0) / d;
    const variance = row.reduce((s, v) => s + (v - mean) ** 2, 0) / d;
    row.forEach((v, i) => out.push(((v - mean) / Math.sqrt(variance + eps)) * (w?.data[i] ?? 1) + (b?.data[i] ?? 0)));
  }
  return out;
}

forEachBackend(() => {
  expectEveryTestToFreeItsTensors();

  describe('layerNorm', () => {
    it('matches the formula over the last dim, several trailing dims, with and without weight and bias', async () => {
      const x = randND([3, 4, 6], 1, -3, 5);
      const w = randND([6], 2);
      const b = randND([6], 3);
      const w2 = randND([4, 6], 4);
      const cases: Array<[string, () => kiln.Tensor, number[]]> = [
        ['last dim, affine', () => kiln.layerNorm(T(x), { weight: T(w), bias: T(b) }), reference(x, 2, 1e-5, w, b)],
        ['last dim, plain', () => kiln.layerNorm(T(x)), reference(x, 2, 1e-5)],
        ['two dims, weight only, eps 0.1', () => kiln.layerNorm(T(x), { weight: T(w2), axis: 1, eps: 0.1 }), reference(x, 1, 0.1, w2)],
        ['every dim (axis -3)', () => kiln.layerNorm(T(x), { axis: -3 }), reference(x, 0, 1e-5)],
      ];
      for (const [label, run, want] of cases) {
        const y = kiln.tidy(run);
        expect([...y.shape]).toEqual([3, 4, 6]);
        assertClose(await read(y), want, { atol: 2e-5, rtol: 2e-5 }, label);
        y.dispose();
      }
    });

    it('rows with a large mean and a small spread (two-pass variance), and long rows', async () => {
      const near = randND([2, 64], 5);
      near.data.forEach((v, i) => (near.data[i] = Math.fround(1000 + 0.01 * v)));
      const long = randND([3, 3000], 6, -2, 2);
      for (const x of [near, long]) {
        const y = kiln.tidy(() => kiln.layerNorm(T(x)));
        const got = await read(y);
        y.dispose();
        assertClose(got, reference(x, 1, 1e-5), { atol: 2e-3, rtol: 2e-3 });
      }
    });

    it('reads strided views (a transpose) as their logical values', async () => {
      const x = randND([5, 7], 7);
      const got = kiln.tidy(() => kiln.layerNorm(T(x).transpose()));
      const want = kiln.tidy(() => kiln.layerNorm(T(x).transpose().contiguous()));
      assertClose(await read(got), await read(want), { atol: 1e-6, rtol: 1e-6 });
      kiln.dispose([got, want]);
    });

    it('gradients of x, weight and bias match finite differences', async () => {
      await gradCheck('layerNorm', [randND([3, 5], 8), randND([5], 9), randND([5], 10)], ([x, w, b]) => kiln.layerNorm(x, { weight: w, bias: b }), { atol: 5e-3, rtol: 3e-2 });
      await gradCheck('layerNorm over two dims', [randND([2, 3, 4], 11), randND([3, 4], 12)], ([x, w]) => kiln.layerNorm(x, { weight: w, axis: 1 }), { atol: 5e-3, rtol: 3e-2 });
      await gradCheck('layerNorm, no affine', [randND([4, 6], 13)], ([x]) => kiln.layerNorm(x), { atol: 5e-3, rtol: 3e-2 });
    });

    it('bad input is an error naming layerNorm, the shapes and the dtypes', () => {
      kiln.tidy(() => {
        const x = kiln.zeros([2, 3, 4]);
        expectThrows(() => kiln.layerNorm(x, { weight: kiln.ones([3]) }), 'layerNorm: weight must be float32 [4]', 'got float32 [3]');
        expectThrows(() => kiln.layerNorm(x, { bias: kiln.ones([3, 4]) }), 'layerNorm: bias must be float32 [4]', 'got float32 [3, 4]');
        expectThrows(() => kiln.layerNorm(x, { axis: 1, weight: kiln.ones([4]) }), 'layerNorm: weight must be float32 [3, 4]');
        expectThrows(() => kiln.layerNorm(x, { axis: 3 }), 'layerNorm');
        expectThrows(() => kiln.layerNorm(x, { eps: -1 }), 'layerNorm: eps must be a finite number >= 0, got -1');
        expectThrows(() => kiln.layerNorm(kiln.zeros([2, 3], 'int32')), 'layerNorm: expected a float32 tensor', 'int32 [2, 3]');
        expectThrows(() => kiln.layerNorm(kiln.zeros([2, 0])), 'layerNorm: normalizes over no elements');
      });
    });
  });
});
