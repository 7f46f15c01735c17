/**
 * Loss values against hand computations in float64 (every reduction and option), PyTorch's
 * documented cross-entropy with class weights and label smoothing (mean divides by the summed
 * weights of the targets), tfjs's softmaxCrossEntropy with smoothing, and clear errors for bad
 * inputs.
 */
import { expect, it } from 'vitest';
import * as kiln from '../ts/index.js';
import type { Tensor } from '../ts/index.js';
import { forEachBackend } from './backends.js';
import { T, Ti, assertClose, expectThrows, randIntND, randND, read } from './helpers.js';
import { type ND, nd } from './reference.js';
import { tf, tfEval, tfT } from './tf.js';

type Reduction = 'none' | 'mean' | 'sum';
const TOL = { atol: 1e-5, rtol: 1e-5 };

function rows(x: ND): number[][] {
  const c = x.shape[x.shape.length - 1];
  return Array.from({ length: x.data.length / c }, (_, i) => x.data.slice(i * c, (i + 1) * c));
}

function logSoftmaxRow(row: number[]): number[] {
  const m = Math.max(...row);
  const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
  return row.map((v) => v - lse);
}

function reduce(values: number[], reduction: Reduction): number[] {
  if (reduction === 'none') return values;
  const s = values.reduce((a, b) => a + b, 0);
  return [reduction === 'sum' ? s : s / values.length];
}

/**
 * torch.nn.functional.cross_entropy(input, target, weight, label_smoothing), following the
 * structure of its documentation: (1 - ε)·nll + ε·smooth, where nll_i = -w[y_i]·logp[i, y_i],
 * smooth_i = -Σ_c w_c·logp[i, c] / C, and 'mean' divides both sums by Σ_i w[y_i].
 */
function torchCrossEntropy(logits: ND, targets: number[], weights: number[] | null, smoothing: number, reduction: Reduction): number[] {
  const logp = rows(logits).map(logSoftmaxRow);
  const C = logits.shape[1];
  const w = weights ?? new Array(C).fill(1);
  const nll = logp.map((lp, i) => -w[targets[i]] * lp[targets[i]]);
  const smooth = logp.map((lp) => -lp.reduce((s, v, c) => s + w[c] * v, 0) / C);
  const perRow = nll.map((v, i) => (1 - smoothing) * v + smoothing * smooth[i]);
  if (reduction === 'none') return perRow;
  const total = perRow.reduce((a, b) => a + b, 0);
  if (reduction === 'sum') return [total];
  return [total / targets.reduce((s, t) => s + w[t], 0)];
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

forEachBackend(() => {
  const logits = randND([6, 4], 1, -3, 3);
  const labels = [3, 0, 1, 1, 2, 0];
  const targets = () => Ti(nd([6], labels));
  const classWeights = [0.2, 1, 2.5, 0.7];

  it('crossEntropy by hand: one row, logits [0, ln 3] and target 1 gives ln(4/3)', async () => {
    const loss = kiln.crossEntropy(kiln.tensor([[0, Math.log(3)]]), Ti(nd([1], [1])));
    assertClose(await read(loss), [Math.log(4 / 3)], TOL);
  });

  for (const smoothing of [0, 0.1, 0.3]) {
    for (const weighted of [false, true]) {
      it(`crossEntropy: labelSmoothing ${smoothing}, ${weighted ? 'class weights' : 'no weights'}, every reduction (PyTorch's definition)`, async () => {
        for (const reduction of ['mean', 'sum', 'none'] as Reduction[]) {
          const got = kiln.tidy(() =>
            kiln.crossEntropy(T(logits), targets(), { reduction, labelSmoothing: smoothing, weights: weighted ? kiln.tensor(classWeights) : undefined }),
          );
          expect([...got.shape], `${reduction} shape`).toEqual(reduction === 'none' ? [6] : []);
          assertClose(await read(got), torchCrossEntropy(logits, labels, weighted ? classWeights : null, smoothing, reduction), TOL, `${reduction}`);
          got.dispose();
        }
      });
    }
  }

  it('crossEntropy: the default reduction is mean; weighted mean divides by Σ w[y], not by the batch size', async () => {
    const plain = await read(kiln.crossEntropy(T(logits), targets()));
    assertClose(plain, torchCrossEntropy(logits, labels, null, 0, 'mean'), TOL);
    const weighted = await read(kiln.crossEntropy(T(logits), targets(), { weights: kiln.tensor(classWeights) }));
    const perRow = torchCrossEntropy(logits, labels, classWeights, 0, 'none');
    const sumW = labels.reduce((s, t) => s + classWeights[t], 0);
    assertClose(weighted, [perRow.reduce((a, b) => a + b, 0) / sumW], TOL);
    expect(Math.abs(weighted[0] - perRow.reduce((a, b) => a + b, 0) / 6), 'differs from the per-row mean').toBeGreaterThan(1e-3);
  });

  it('crossEntropy: label smoothing matches tf.losses.softmaxCrossEntropy (per row)', async () => {
    const oneHot = nd([6, 4], labels.flatMap((t) => [0, 1, 2, 3].map((c) => (c === t ? 1 : 0))));
    const want = tfEval(() => tf.losses.softmaxCrossEntropy(tfT(oneHot), tfT(logits), undefined, 0.2, tf.Reduction.NONE));
    assertClose(await read(kiln.crossEntropy(T(logits), targets(), { labelSmoothing: 0.2, reduction: 'none' })), want.data, TOL);
  });

  it('crossEntropy: large logits stay finite (stable log-softmax)', async () => {
    const big = nd([2, 3], [1000, 0, -1000, 50, 60, 55]);
    const got = await read(kiln.crossEntropy(T(big), Ti(nd([2], [1, 1])), { reduction: 'none' }));
    assertClose(got, torchCrossEntropy(big, [1, 1], null, 0, 'none'), TOL);
    expect(got.every(Number.isFinite)).toBe(true);
  });

  for (const reduction of ['mean', 'sum', 'none'] as Reduction[]) {
    it(`binaryCrossEntropy (${reduction}): -[y log σ(x) + (1 - y) log(1 - σ(x))], soft targets`, async () => {
      const x = randND([3, 5], 2, -4, 4);
      const y = randND([3, 5], 3, 0, 1);
      const want = x.data.map((v, i) => -(y.data[i] * Math.log(sigmoid(v)) + (1 - y.data[i]) * Math.log(1 - sigmoid(v))));
      const got = kiln.binaryCrossEntropy(T(x), T(y), { reduction });
      expect([...got.shape]).toEqual(reduction === 'none' ? [3, 5] : []);
      assertClose(await read(got), reduce(want, reduction), TOL);
    });

    it(`mse (${reduction})`, async () => {
      const p = randND([4, 3], 4);
      const t = randND([4, 3], 5);
      assertClose(await read(kiln.mse(T(p), T(t), { reduction })), reduce(p.data.map((v, i) => (v - t.data[i]) ** 2), reduction), TOL);
    });

    it(`huber (${reduction}, delta 1 and 0.3): ½d² inside, delta·(|d| - ½delta) outside`, async () => {
      const p = randND([4, 3], 6, -2, 2);
      const t = randND([4, 3], 7, -2, 2);
      for (const delta of [1, 0.3]) {
        const want = p.data.map((v, i) => {
          const d = Math.abs(v - t.data[i]);
          return d <= delta ? 0.5 * d * d : delta * (d - 0.5 * delta);
        });
        assertClose(await read(kiln.huber(T(p), T(t), { delta, reduction })), reduce(want, reduction), TOL, `delta ${delta}`);
      }
    });

    it(`klDivergence (${reduction}): Σ p (log p - log q), terms with p = 0 are 0`, async () => {
      const p = nd([2, 3], [0.2, 0.8, 0, 0.5, 0.25, 0.25]);
      const logQ = nd([2, 3], [0.3, 0.3, 0.4, 0.1, 0.6, 0.3].map(Math.log));
      const terms = p.data.map((v, i) => (v === 0 ? 0 : v * (Math.log(v) - logQ.data[i])));
      assertClose(await read(kiln.klDivergence(T(logQ), T(p), { reduction })), reduce(terms, reduction), TOL);
    });
  }

  it('binaryCrossEntropy: extreme logits give finite losses (softplus form)', async () => {
    const got = await read(kiln.binaryCrossEntropy(kiln.tensor([100, -100, 100, -100]), kiln.tensor([1, 0, 0, 1]), { reduction: 'none' }));
    assertClose(got, [0, 0, 100, 100], { atol: 1e-5 });
  });

  it('huber: the default delta is 1; mse is the default-reduction mean', async () => {
    const p = nd([3], [0, 0, 0]);
    const t = nd([3], [0.5, 2, -3]);
    assertClose(await read(kiln.huber(T(p), T(t))), [(0.125 + 1.5 + 2.5) / 3], TOL);
    assertClose(await read(kiln.mse(T(p), T(t))), [(0.25 + 4 + 9) / 3], TOL);
  });

  it('klDivergence: batchmean (the default) divides the sum by the batch size; zero when p = q', async () => {
    const p = nd([2, 3], [0.2, 0.8, 0, 0.5, 0.25, 0.25]);
    const logQ = nd([2, 3], [0.3, 0.3, 0.4, 0.1, 0.6, 0.3].map(Math.log));
    const sum = p.data.reduce((s, v, i) => s + (v === 0 ? 0 : v * (Math.log(v) - logQ.data[i])), 0);
    assertClose(await read(kiln.klDivergence(T(logQ), T(p))), [sum / 2], TOL);
    assertClose(await read(kiln.klDivergence(T(logQ), T(p), { reduction: 'batchmean' })), [sum / 2], TOL);
    const q = nd([2, 3], [0.3, 0.3, 0.4, 0.1, 0.6, 0.3]);
    assertClose(await read(kiln.klDivergence(T(nd([2, 3], q.data.map(Math.log))), T(q))), [0], { atol: 1e-6 });
  });

  it('gaussianKl: -½ Σ (1 + logVar - mu² - e^logVar) / batch; zero for N(0, 1)', async () => {
    const mu = randND([3, 4], 8);
    const logVar = randND([3, 4], 9, -1, 1);
    const sum = mu.data.reduce((s, m, i) => s + (1 + logVar.data[i] - m * m - Math.exp(logVar.data[i])), 0);
    assertClose(await read(kiln.gaussianKl(T(mu), T(logVar))), [(-0.5 * sum) / 3], TOL);
    assertClose(await read(kiln.gaussianKl(kiln.zeros([2, 5]), kiln.zeros([2, 5]))), [0], { atol: 0 });
  });

  it('the losses namespace exports the same functions', () => {
    expect(kiln.losses.crossEntropy).toBe(kiln.crossEntropy);
    expect(kiln.losses.gaussianKl).toBe(kiln.gaussianKl);
  });

  it('losses free their intermediates', () => {
    const a = T(randND([4, 3], 10));
    const b = T(randND([4, 3], 11));
    const y = Ti(randIntND([4], 12, 0, 3));
    const start = kiln.memory();
    const out: Tensor[] = [
      kiln.mse(a, b),
      kiln.huber(a, b),
      kiln.binaryCrossEntropy(a, b.sigmoid()),
      kiln.klDivergence(a, b.softmax()),
      kiln.gaussianKl(a, b),
      kiln.crossEntropy(a, y, { labelSmoothing: 0.1 }),
    ];
    expect(kiln.memory().numTensors - start.numTensors, 'only the results (and the two softmax/sigmoid inputs) remain').toBe(out.length + 2);
    kiln.dispose(out);
    kiln.dispose([a, b, y]);
  });

  // ---- bad inputs ----

  it('crossEntropy: float targets, wrong target shape, out-of-range targets, bad logits error clearly', () => {
    kiln.tidy(() => {
      const x = T(logits);
      expectThrows(() => kiln.crossEntropy(x, kiln.tensor([3, 0, 1, 1, 2, 0])), 'crossEntropy', 'int32', 'float32');
      expectThrows(() => kiln.crossEntropy(x, Ti(nd([5], [0, 0, 1, 1, 2]))), 'crossEntropy', '[6]', '[5]');
      expectThrows(() => kiln.crossEntropy(x, Ti(nd([6, 1], labels))), 'crossEntropy', '[6, 1]');
      expectThrows(() => kiln.crossEntropy(x, Ti(nd([6], [3, 0, 4, 1, 2, 0]))), 'crossEntropy', 'target 4', 'out of range', '4 classes');
      expectThrows(() => kiln.crossEntropy(x, Ti(nd([6], [3, 0, 1, -1, 2, 0]))), 'crossEntropy', '-1', 'out of range');
      expectThrows(() => kiln.crossEntropy(kiln.tensor([1, 2, 3]), Ti(nd([1], [0]))), 'crossEntropy', 'logits', '[3]');
      expectThrows(() => kiln.crossEntropy(x, targets(), { weights: kiln.tensor([1, 2]) }), 'crossEntropy', 'weights', '[4]', '[2]');
      expectThrows(() => kiln.crossEntropy(x, targets(), { labelSmoothing: 1 }), 'crossEntropy', 'labelSmoothing');
      expectThrows(() => kiln.crossEntropy(x, targets(), { labelSmoothing: -0.1 }), 'crossEntropy', 'labelSmoothing');
      expectThrows(() => kiln.crossEntropy(x, targets(), { reduction: 'avg' as Reduction }), 'crossEntropy', 'reduction', 'avg');
      expectThrows(() => kiln.crossEntropy(x, [1, 2] as unknown as Tensor), 'crossEntropy', 'targets', 'Tensor');
    });
  });

  it('the composed losses: shape mismatch, bad reduction, bad delta error clearly', () => {
    kiln.tidy(() => {
      const a = kiln.zeros([2, 3]);
      const b = kiln.zeros([3, 2]);
      for (const [name, fn] of [
        ['mse', kiln.mse],
        ['huber', kiln.huber],
        ['binaryCrossEntropy', kiln.binaryCrossEntropy],
        ['klDivergence', kiln.klDivergence],
      ] as const) {
        expectThrows(() => fn(a, b), name, '[2, 3]', '[3, 2]');
        expectThrows(() => fn(a, a, { reduction: 'avg' as Reduction }), name, 'reduction', 'avg');
      }
      expectThrows(() => kiln.gaussianKl(a, b), 'gaussianKl', '[2, 3]', '[3, 2]');
      expectThrows(() => kiln.huber(a, a, { delta: 0 }), 'huber', 'delta');
      expectThrows(() => kiln.huber(a, a, { delta: -1 }), 'huber', 'delta');
    });
  });
});
