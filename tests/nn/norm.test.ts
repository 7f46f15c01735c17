/**
 * BatchNorm1d and LayerNorm against hand computations with PyTorch's formulas:
 *   train: y = (x − μ_B)/√(σ²_B + eps)·γ + β, σ²_B biased;
 *          running_mean ← (1 − m)·running_mean + m·μ_B, running_var ← (1 − m)·running_var + m·σ²_B·n/(n − 1)
 *   eval:  y = (x − running_mean)/√(running_var + eps)·γ + β
 *   LayerNorm: per sample over the trailing dims, biased variance.
 */
import { describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import * as nn from '../../ts/nn/index.js';
import { forEachBackend } from '../backends.js';
import { assertClose, expectThrows, randND, read, T, expectEveryTestToFreeItsTensors } from '../helpers.js';
import { gradCheck } from './gradcheck.js';

/** Per-column mean and biased variance of rows. */
function columnStats(rows: number[][]): { mean: number[]; variance: number[] } {
  const n = rows.length;
  const mean = rows[0].map((_, c) => rows.reduce((s, r) => s + r[c], 0) / n);
  const variance = rows[0].map((_, c) => rows.reduce((s, r) => s + (r[c] - mean[c]) ** 2, 0) / n);
  return { mean, variance };
}

forEachBackend(() => {
  expectEveryTestToFreeItsTensors();

  describe('BatchNorm1d', () => {
    const X = [[1, 2, -1], [3, 0, 0], [-2, 4, 5], [6, 2, 1]];
    const eps = 1e-5;

    it('training: batch statistics and PyTorch running-stat updates; eval: running statistics', async () => {
      const bn = new nn.BatchNorm1d(3, { momentum: 0.2 });
      kiln.tidy(() => {
        bn.loadStateDict({ ...bn.stateDict(), weight: kiln.tensor([1, 2, 0.5]), bias: kiln.tensor([0, 1, -1]) });
      });
      const gamma = [1, 2, 0.5];
      const beta = [0, 1, -1];
      const { mean, variance } = columnStats(X);
      const n = X.length;

      const yTrain = kiln.tidy(() => bn.forward(kiln.tensor(X)));
      assertClose(await read(yTrain), X.flatMap((r) => r.map((v, c) => ((v - mean[c]) / Math.sqrt(variance[c] + eps)) * gamma[c] + beta[c])), { atol: 1e-5, rtol: 1e-5 });
      const rm1 = mean.map((m) => 0.2 * m);
      const rv1 = variance.map((v) => 0.8 + 0.2 * v * n / (n - 1));
      assertClose(await read(bn.runningMean), rm1);
      assertClose(await read(bn.runningVar), rv1);

      // a second batch moves them again
      const X2 = X.map((r) => r.map((v) => 2 * v + 1));
      kiln.tidy(() => {
        bn.forward(kiln.tensor(X2));
      });
      const s2 = columnStats(X2);
      const rm2 = rm1.map((r, c) => 0.8 * r + 0.2 * s2.mean[c]);
      const rv2 = rv1.map((r, c) => 0.8 * r + 0.2 * s2.variance[c] * n / (n - 1));
      assertClose(await read(bn.runningMean), rm2, { atol: 1e-5, rtol: 1e-5 });
      assertClose(await read(bn.runningVar), rv2, { atol: 1e-5, rtol: 1e-5 });

      bn.eval();
      const yEval = kiln.tidy(() => bn.forward(kiln.tensor(X)));
      assertClose(await read(yEval), X.flatMap((r) => r.map((v, c) => ((v - rm2[c]) / Math.sqrt(rv2[c] + eps)) * gamma[c] + beta[c])), { atol: 1e-5, rtol: 1e-5 });
      assertClose(await read(bn.runningMean), rm2, { atol: 1e-5, rtol: 1e-5 }); // eval does not update
      kiln.dispose([yTrain, yEval]);
      bn.dispose();
    });

    it('running statistics do not record gradients and training output does not depend on them', () => {
      const bn = new nn.BatchNorm1d(3);
      kiln.tidy(() => {
        const y = bn.forward(kiln.tensor(X).setRequiresGrad());
        expect(y.requiresGrad).toBe(true);
        expect(bn.runningMean.requiresGrad || bn.runningVar.requiresGrad).toBe(false);
      });
      expect(bn.buffers().every((b) => b.kept && !b.isDisposed)).toBe(true);
      bn.dispose();
    });

    it('[batch, features, length]: statistics over batch and length', async () => {
      const bn = new nn.BatchNorm1d(2, { affine: false });
      expect(bn.parameters()).toEqual([]);
      const x = randND([3, 2, 4], 11);
      const y = kiln.tidy(() => bn.forward(T(x)));
      const rows = (c: number) => x.data.filter((_, i) => Math.floor(i / 4) % 2 === c);
      const want = x.data.map((v, i) => {
        const vals = rows(Math.floor(i / 4) % 2);
        const m = vals.reduce((a, b) => a + b, 0) / vals.length;
        const s = vals.reduce((a, b) => a + (b - m) ** 2, 0) / vals.length;
        return (v - m) / Math.sqrt(s + eps);
      });
      assertClose(await read(y), want, { atol: 1e-5, rtol: 1e-4 });
      const means = [0, 1].map((c) => rows(c).reduce((a, b) => a + b, 0) / 12);
      assertClose(await read(bn.runningMean), means.map((m) => 0.1 * m));
      y.dispose();
      bn.dispose();
    });

    it('gradients match finite differences in training mode', async () => {
      const bn = new nn.BatchNorm1d(3);
      kiln.tidy(() => {
        bn.loadStateDict({ ...bn.stateDict(), weight: kiln.tensor([1.5, -0.5, 1]), bias: kiln.tensor([0.2, 0, -0.3]) });
      });
      await gradCheck(bn, randND([5, 3], 3), { atol: 5e-3, rtol: 3e-2 });
      bn.dispose();
    });

    it('validates its input and options', () => {
      const bn = new nn.BatchNorm1d(3);
      kiln.tidy(() => {
        expectThrows(() => bn.forward(kiln.zeros([4, 2])), 'BatchNorm1d(3): expected input [batch, 3] or [batch, 3, length], got float32 [4, 2]');
        expectThrows(() => bn.forward(kiln.zeros([1, 3])), 'BatchNorm1d(3): training needs more than one value per feature');
        bn.eval();
        expect([...bn.forward(kiln.zeros([1, 3])).shape]).toEqual([1, 3]);
      });
      expectThrows(() => new nn.BatchNorm1d(3, { momentum: 2 }), 'momentum must be in [0, 1]');
      bn.dispose();
    });
  });

  describe('LayerNorm', () => {
    it('normalizes each sample to mean ≈ 0, variance ≈ 1 (biased), then scales and shifts', async () => {
      const ln = new nn.LayerNorm(8);
      const x = randND([4, 8], 5, -3, 7);
      const y = kiln.tidy(() => ln.forward(T(x)));
      const out = await read(y);
      for (let r = 0; r < 4; r++) {
        const row = out.slice(r * 8, r * 8 + 8);
        const m = row.reduce((a, b) => a + b, 0) / 8;
        const v = row.reduce((a, b) => a + (b - m) ** 2, 0) / 8;
        expect(Math.abs(m)).toBeLessThan(1e-5);
        expect(v).toBeCloseTo(1, 3);
      }
      kiln.tidy(() => {
        ln.loadStateDict({ weight: kiln.full([8], 2), bias: kiln.full([8], 3) });
      });
      const y2 = kiln.tidy(() => ln.forward(T(x)));
      assertClose(await read(y2), out.map((v) => 2 * v + 3), { atol: 1e-5, rtol: 1e-5 });
      kiln.dispose([y, y2]);
      ln.dispose();
    });

    it('normalizes over several trailing dims and checks them', async () => {
      const ln = new nn.LayerNorm([2, 3], { elementwiseAffine: false });
      expect(ln.parameters()).toEqual([]);
      const x = randND([2, 2, 3], 8);
      const y = kiln.tidy(() => ln.forward(T(x)));
      const out = await read(y);
      for (let r = 0; r < 2; r++) {
        const vals = x.data.slice(r * 6, r * 6 + 6);
        const m = vals.reduce((a, b) => a + b, 0) / 6;
        const v = vals.reduce((a, b) => a + (b - m) ** 2, 0) / 6;
        assertClose(out.slice(r * 6, r * 6 + 6), vals.map((u) => (u - m) / Math.sqrt(v + 1e-5)), { atol: 1e-5, rtol: 1e-4 });
      }
      kiln.tidy(() => {
        expectThrows(() => ln.forward(kiln.zeros([2, 3, 2])), 'LayerNorm([2, 3]): expected input [..., 2, 3], got float32 [2, 3, 2]');
      });
      y.dispose();
      ln.dispose();
    });

    it('gradients match finite differences', async () => {
      const ln = new nn.LayerNorm(5);
      kiln.tidy(() => {
        ln.loadStateDict({ weight: kiln.tensor([1, 2, -1, 0.5, 1]), bias: kiln.tensor([0, 0.1, 0.2, -0.1, 0]) });
      });
      await gradCheck(ln, randND([3, 5], 4), { atol: 5e-3, rtol: 3e-2 });
      ln.dispose();
    });
  });
});
