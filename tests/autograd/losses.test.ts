/**
 * Gradients of the losses: the fused cross-entropy kernel (every combination of class weights,
 * label smoothing and reduction) and the composed losses (BCE, MSE, Huber, KL, Gaussian KL)
 * with respect to both of their float inputs.
 */
import { it } from 'vitest';
import * as kiln from '../../ts/index.js';
import type { Tensor } from '../../ts/index.js';
import { forEachBackend } from '../backends.js';
import { Ti } from '../helpers.js';
import { gradCheck, positive, uniform } from '../gradcheck.js';
import { nd, type ND } from '../reference.js';

type Reduction = 'none' | 'mean' | 'sum';
const REDUCTIONS: Reduction[] = ['mean', 'sum', 'none'];

/** Probabilities along the last axis (rows sum to 1), all positive. */
function probabilities(rows: number, cols: number, seed: number): ND {
  const raw = positive([rows, cols], seed);
  const data = raw.data.slice();
  for (let r = 0; r < rows; r++) {
    const s = data.slice(r * cols, (r + 1) * cols).reduce((a, b) => a + b, 0);
    for (let c = 0; c < cols; c++) data[r * cols + c] = Math.fround(data[r * cols + c] / s);
  }
  return nd([rows, cols], data);
}

forEachBackend(() => {
  const logits = uniform([4, 3], 1, -2, 2);
  const targets = () => Ti(nd([4], [2, 0, 1, 2]));
  const classWeights = () => kiln.tensor([0.5, 1, 2]);

  for (const smoothing of [0, 0.1]) {
    for (const weighted of [false, true]) {
      it(`crossEntropy: labelSmoothing ${smoothing}, ${weighted ? 'class weights' : 'no weights'}, every reduction`, async () => {
        for (const reduction of REDUCTIONS) {
          await gradCheck(`crossEntropy(${reduction})`, [logits], ([x]) =>
            kiln.crossEntropy(x, targets(), { reduction, labelSmoothing: smoothing, weights: weighted ? classWeights() : undefined }),
          );
        }
      });
    }
  }

  it('crossEntropy: non-contiguous logits and a downstream op on the per-row losses', async () => {
    await gradCheck('crossEntropy of transposed logits', [uniform([3, 4], 2, -2, 2)], ([x]) => kiln.crossEntropy(x.transpose(), targets()));
    await gradCheck('crossEntropy(none) squared', [logits], ([x]) => kiln.crossEntropy(x, targets(), { reduction: 'none' }).square());
  });

  for (const reduction of REDUCTIONS) {
    it(`binaryCrossEntropy (${reduction}): wrt logits and soft targets`, async () => {
      await gradCheck('binaryCrossEntropy', [uniform([3, 4], 3, -3, 3), uniform([3, 4], 4, 0, 1)], ([x, y]) => kiln.binaryCrossEntropy(x, y, { reduction }));
    });

    it(`mse (${reduction}): wrt predictions and targets`, async () => {
      await gradCheck('mse', [uniform([3, 4], 5), uniform([3, 4], 6)], ([p, t]) => kiln.mse(p, t, { reduction }));
    });

    it(`huber (${reduction}, delta 1 and 0.5): both branches, away from |d| = delta`, async () => {
      // differences in ±[0.1, 0.4] (quadratic) and ±[1.3, 1.8] (linear for both deltas)
      const d = [0.1, -0.3, 1.5, -1.8, 0.4, 1.3, -0.2, -1.4];
      const p = uniform([2, 4], 7);
      const t = nd([2, 4], p.data.map((v, i) => Math.fround(v - d[i])));
      for (const delta of [1, 0.5]) {
        const shifted = delta === 0.5 ? nd([2, 4], p.data.map((v, i) => Math.fround(v - (Math.abs(d[i]) < 0.45 ? d[i] * 0.5 : d[i])))) : t;
        await gradCheck(`huber delta ${delta}`, [p, shifted], ([a, b]) => kiln.huber(a, b, { delta, reduction }));
      }
    });

    it(`klDivergence (${reduction}): wrt log q and p`, async () => {
      const logQ = nd([3, 4], probabilities(3, 4, 8).data.map(Math.log).map(Math.fround));
      await gradCheck('klDivergence', [logQ, probabilities(3, 4, 9)], ([q, p]) => kiln.klDivergence(q, p, { reduction }));
    });
  }

  it('klDivergence (batchmean, the default) and zero-probability targets (gradient wrt log q)', async () => {
    const logQ = uniform([3, 4], 10, -3, -0.5);
    await gradCheck('klDivergence batchmean', [logQ, probabilities(3, 4, 11)], ([q, p]) => kiln.klDivergence(q, p));
    const withZeros = nd([3, 4], [0.5, 0, 0.5, 0, 0, 1, 0, 0, 0.25, 0.25, 0, 0.5]);
    await gradCheck('klDivergence with p = 0', [logQ, withZeros], ([q, p]) => kiln.klDivergence(q, p), { wrt: [0] });
  });

  it('gaussianKl: wrt mu and logVar', async () => {
    await gradCheck('gaussianKl', [uniform([3, 4], 12), uniform([3, 4], 13, -1, 1)], ([mu, lv]) => kiln.gaussianKl(mu, lv));
  });

  it('a loss on top of a small network (gradients reach the first layer)', async () => {
    const y = () => Ti(nd([5], [0, 2, 1, 1, 0]));
    await gradCheck('mlp', [uniform([5, 4], 14), uniform([4, 6], 15), uniform([6], 16), uniform([6, 3], 17)], ([x, w1, b1, w2]: Tensor[]) =>
      kiln.crossEntropy(x.matmul(w1).add(b1).tanh().matmul(w2), y()),
    );
  });
});
