/**
 * Metrics against scikit-learn (an independent implementation, run in Kiln's Python environment:
 * `npm test` installs it) on random data with signal, both as one-shot functions and streamed
 * batch by batch through `evaluate` and `fit`; plus hand-computed small cases (ties in AUROC,
 * uniform logits' perplexity, a constant R² column) and a user-defined streaming metric.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import * as kiln from '../../ts/index.js';
import type { Tensor } from '../../ts/index.js';
import { optim, train } from '../../ts/index.js';
import type { Batch, Metric, TrainableModel } from '../../ts/train/index.js';
import { forEachBackend } from '../backends.js';
import { assertClose, prng } from '../helpers.js';
import { TinyMlp, batches, xorData } from './fixtures.js';

const m = train.metrics;
const script = fileURLToPath(new URL('./fixtures/metrics_reference.py', import.meta.url));
const pythonBin = process.env.KILN_PYTHON ?? 'python3';

// 150 rows of 4 class scores, the true class nudged up so the metrics are far from chance and from 1
const N = 150;
const C = 4;
const r = prng(11);
const labels = Int32Array.from({ length: N }, () => Math.floor(r() * C));
const scores = Float32Array.from({ length: N * C }, (_, i) => 2 * r() - 1 + (labels[Math.floor(i / C)] === i % C ? 0.9 : 0));
// binary scores rounded to one decimal, so ties occur (AUROC counts them one half)
const binaryLabels = Int32Array.from({ length: N }, () => (r() < 0.4 ? 1 : 0));
const binaryScores = Float32Array.from(binaryLabels, (l) => Math.round((r() + 0.5 * l) * 10) / 10);
// regression targets [N, 3] far from zero (R²'s sums must not lose their digits), predictions near them
const targets = Float32Array.from({ length: N * 3 }, (_, i) => 100 + (i % 3) * 5 + 3 * (r() - 0.5));
const predictions = Float32Array.from(targets, (t) => t + (r() - 0.5) * 2);

const rows = (flat: ArrayLike<number>, width: number) => Array.from({ length: flat.length / width }, (_, i) => Array.from(flat).slice(i * width, (i + 1) * width));
const reference = (() => {
  const input = JSON.stringify({
    scores: rows(scores, C), labels: Array.from(labels), binaryScores: Array.from(binaryScores), binaryLabels: Array.from(binaryLabels),
    predictions: rows(predictions, 3), targets: rows(targets, 3), topK: 2,
  });
  const p = spawnSync(pythonBin, [script], { input, encoding: 'utf8' });
  if (p.status !== 0) throw new Error(`${pythonBin} metrics_reference.py failed (npm test installs scikit-learn into Kiln's venv):\n${p.stderr}`);
  return JSON.parse(p.stdout) as Record<string, number & number[] & number[][]>;
})();

/** Returns its input: evaluate then streams the given scores through the metrics. */
const identity: TrainableModel = { forward: (x: Tensor) => x, parameters: () => [], train: () => {}, eval: () => {}, stateDict: () => ({}), loadStateDict: () => {} };

/** The rows of (x, y) in batches of `size` (the last one shorter), as an array the caller frees. */
function inBatches(x: ArrayLike<number>, xShape: number[], y: Int32Array | Float32Array, yWidth: number, size: number): Batch[] {
  const width = xShape.reduce((a, b) => a * b, 1);
  const out: Batch[] = [];
  for (let lo = 0; lo < N; lo += size) {
    const hi = Math.min(N, lo + size);
    out.push({
      x: kiln.tensor(Float32Array.from(x).slice(lo * width, hi * width), [hi - lo, ...xShape]),
      y: kiln.tensor(y.slice(lo * yWidth, hi * yWidth), yWidth === 1 ? [hi - lo] : [hi - lo, yWidth]),
    });
  }
  return out;
}
const free = (bs: Batch[]) => kiln.dispose(bs.flatMap((b) => [b.x as Tensor, b.y!]));

forEachBackend(() => {
  beforeEach(() => {
    vi.spyOn(console, 'log').mockImplementation(() => {});
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('classification metrics as functions equal scikit-learn', () => {
    const s = kiln.tensor(scores, [N, C]);
    const y = kiln.tensor(labels, [N]);
    expect(m.accuracy(s, y)).toBeCloseTo(reference.accuracy, 6);
    expect(m.topKAccuracy(s, y, 2)).toBeCloseTo(reference.topK, 6);
    expect(m.confusionMatrix(s, y)).toEqual(reference.confusion);
    const report = m.precisionRecallF1(s, y);
    assertClose(report.f1, reference.f1PerClass, { atol: 1e-9 });
    assertClose(report.precision, reference.precisionPerClass, { atol: 1e-9 });
    assertClose(report.recall, reference.recallPerClass, { atol: 1e-9 });
    expect(report.macro.precision).toBeCloseTo(reference.precisionMacro, 9);
    expect(report.macro.recall).toBeCloseTo(reference.recallMacro, 9);
    expect(report.macro.f1).toBeCloseTo(reference.f1Macro, 9);
    expect(report.micro.f1).toBeCloseTo(reference.f1Micro, 9);
    expect(report.micro.precision).toBeCloseTo(reference.precisionMicro, 9);
    expect(m.auroc(s, y)).toBeCloseTo(reference.aurocOvr, 6);
    const bs = kiln.tensor(binaryScores, [N]);
    const by = kiln.tensor(binaryLabels, [N]);
    expect(m.auroc(bs, by)).toBeCloseTo(reference.aurocBinary, 9);
    expect(m.perplexity(s, y)).toBeCloseTo(reference.perplexity, 4);
    expect(m.bitsPerChar(s, y)).toBeCloseTo(reference.bitsPerChar, 5);
    kiln.dispose([s, y, bs, by]);
  });

  it('regression metrics as functions equal scikit-learn (targets near 100: R² keeps its digits)', () => {
    const p = kiln.tensor(predictions, [N, 3]);
    const t = kiln.tensor(targets, [N, 3]);
    expect(m.meanAbsoluteError(p, t)).toBeCloseTo(reference.mae, 5);
    expect(m.meanSquaredError(p, t)).toBeCloseTo(reference.mse, 5);
    expect(m.rootMeanSquaredError(p, t)).toBeCloseTo(reference.rmse, 5);
    expect(m.r2Score(p, t)).toBeCloseTo(reference.r2, 4);
    kiln.dispose([p, t]);
  });

  it('streamed over batches of 32 by evaluate, every named metric equals scikit-learn on the whole set', async () => {
    const cls = inBatches(scores, [C], labels, 1, 32);
    const logs = await kiln.evaluate(identity, cls, {
      loss: (out, y) => kiln.crossEntropy(out, y),
      metrics: ['accuracy', 'top2Accuracy', 'precision', 'recall', 'f1', 'microF1', 'perClassF1', 'auroc', 'perplexity', 'bitsPerChar'],
    });
    expect(logs.accuracy).toBeCloseTo(reference.accuracy, 6);
    expect(logs.top2Accuracy).toBeCloseTo(reference.topK, 6);
    expect(logs.precision).toBeCloseTo(reference.precisionMacro, 9);
    expect(logs.recall).toBeCloseTo(reference.recallMacro, 9);
    expect(logs.f1).toBeCloseTo(reference.f1Macro, 9);
    expect(logs.microF1).toBeCloseTo(reference.f1Micro, 9);
    assertClose([0, 1, 2, 3].map((c) => logs[`f1Class${c}`]), reference.f1PerClass, { atol: 1e-9 });
    expect(logs.auroc).toBeCloseTo(reference.aurocOvr, 6);
    expect(logs.perplexity).toBeCloseTo(reference.perplexity, 4);
    expect(logs.bitsPerChar).toBeCloseTo(reference.bitsPerChar, 5);
    expect(Math.log(logs.perplexity)).toBeCloseTo(logs.loss, 5);
    const bin = inBatches(binaryScores, [], binaryLabels, 1, 32);
    const binLogs = await kiln.evaluate(identity, bin, { step: ({ x, y }: Batch) => ({ loss: kiln.scalar(0), outputs: x as Tensor, targets: y }), metrics: ['auroc'] });
    expect(binLogs.auroc).toBeCloseTo(reference.aurocBinary, 9);
    const reg = inBatches(predictions, [3], targets, 3, 32);
    const regLogs = await kiln.evaluate(identity, reg, { loss: (p, t) => kiln.mse(p, t), metrics: ['mae', 'mse', 'rmse', 'r2'], prefix: 'test' });
    expect(regLogs.testMae).toBeCloseTo(reference.mae, 5);
    expect(regLogs.testMse).toBeCloseTo(reference.mse, 4);
    expect(regLogs.testRmse).toBeCloseTo(reference.rmse, 5);
    expect(regLogs.testR2).toBeCloseTo(reference.r2, 4);
    [cls, bin, reg].forEach(free);
  });

  it('hand-computed cases: AUROC with ties, uniform logits, a perfect and a constant column, a confusion matrix', () => {
    const t = (v: number[], shape: number[], dtype?: 'int32') => kiln.tensor(v, shape, dtype);
    // sklearn's documented example: 0.75
    expect(m.auroc(t([0.1, 0.4, 0.35, 0.8], [4]), t([0, 0, 1, 1], [4], 'int32'))).toBe(0.75);
    // all tied: one half
    expect(m.auroc(t([1, 1, 1, 1], [4]), t([0, 1, 0, 1], [4], 'int32'))).toBe(0.5);
    // two logits rank as their difference
    expect(m.auroc(t([0, 1, 0, 3, 5, 0], [3, 2]), t([0, 1, 0], [3], 'int32'))).toBe(1);
    // uniform logits over 5 classes: perplexity 5, log2(5) bits
    const uniform = kiln.zeros([2, 3, 5]);
    const ids = t([0, 1, 2, 3, 4, 0], [2, 3], 'int32');
    expect(m.perplexity(uniform, ids)).toBeCloseTo(5, 5);
    expect(m.bitsPerChar(uniform, ids)).toBeCloseTo(Math.log2(5), 5);
    expect(m.accuracy(uniform, ids)).toBeCloseTo(2 / 6, 6); // argmax of a tie is class 0
    expect(m.r2Score(t([1, 2, 3], [3]), t([1, 2, 3], [3]))).toBe(1);
    expect(m.r2Score(t([1, 2, 3], [3]), t([2, 2, 2], [3]))).toBe(0);
    // predictions (argmax): 0, 1, 1, 2; targets 0, 0, 1, 2
    expect(m.confusionMatrix(t([5, 0, 0, 0, 5, 0, 0, 5, 0, 0, 0, 5], [4, 3]), t([0, 0, 1, 2], [4], 'int32'))).toEqual([[1, 1, 0], [0, 1, 0], [0, 0, 1]]);
    expect(m.topKAccuracy(t([3, 2, 1, 1, 2, 3], [2, 3]), t([2, 2], [2], 'int32'), 2)).toBe(0.5);
  });

  it('bad shapes and dtypes name the metric; fit logs the confusion matrix in history.details; a user-defined metric streams', async () => {
    const s = kiln.zeros([4, 3]);
    expect(() => m.accuracy(s, kiln.zeros([4]))).toThrow(/accuracy: expected class scores \[\.\.\., classes\] and int32 class targets.*float32 \[4\]/);
    expect(() => m.r2Score(s, kiln.zeros([4]))).toThrow(/r2: expected predictions and float32 targets of the same shape/);
    expect(() => m.auroc(kiln.zeros([4, 3, 2]), kiln.zeros([4], 'int32'))).toThrow(/auroc: expected scores \[batch\] or \[batch, classes\]/);

    /** Counts positive outputs: a host-side metric written against the documented interface. */
    class PositiveFraction implements Metric {
      readonly name = 'positiveFraction';
      private positive = 0;
      private total = 0;
      resets = 0;
      update(outputs: Tensor): void {
        const v = outputs.dataSync();
        this.positive += v.filter((x) => x > 0).length;
        this.total += v.length;
      }
      compute(): number {
        return this.positive / this.total;
      }
      reset(): void {
        this.resets++;
        this.positive = 0;
        this.total = 0;
      }
    }
    const custom = new PositiveFraction();
    const data = xorData(96, 4);
    const model = new TinyMlp(2, 8, 2, 2);
    const opt = new optim.SGD(model.parameters(), { lr: 0.1 });
    const history = await kiln.fit(model, batches(data, 32), {
      epochs: 2, loss: (o, y) => kiln.crossEntropy(o, y), optimizer: opt, verbose: 0, validationData: batches(data, 48), metrics: ['confusionMatrix', custom],
    });
    const cm = history.details[1].valConfusionMatrix as number[][];
    expect(cm.flat().reduce((a, b) => a + b, 0)).toBe(96);
    const logits = await kiln.predict(model, batches(data, 96));
    const y = kiln.tensor(data.y, [96]);
    expect(cm).toEqual(m.confusionMatrix(logits, y));
    expect(history.epochs[1].valPositiveFraction).toBe(Array.from(logits.dataSync()).filter((v) => v > 0).length / 192);
    expect(custom.resets).toBeGreaterThanOrEqual(4);
    kiln.dispose([s, logits, y]);
    opt.dispose();
    model.dispose();
  });
});
