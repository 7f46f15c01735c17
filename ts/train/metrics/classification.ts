/**
 * Classification metrics from class scores (logits or probabilities) [..., classes] and int32
 * class targets [...]: every position of a sequence model counts as one prediction.
 */

import type { Tensor } from '../../tensor.js';
import { equal, greater, mul } from '../../ops/elementwise.js';
import { matmul } from '../../ops/matmul.js';
import { argmax, sum } from '../../ops/reduce.js';
import { cast, oneHot, reshape } from '../../ops/shape.js';
import { checkClassScores, MeanMetric, RunningSum, type Metric } from './metric.js';

/** Fraction of predictions whose highest score is the target class. */
export class Accuracy extends MeanMetric {
  readonly name: string = 'accuracy';

  protected batchSum(outputs: Tensor, targets: Tensor): Tensor {
    checkClassScores(this.name, outputs, targets);
    return sum(cast(equal(argmax(outputs, -1), targets), 'float32'));
  }
}

/**
 * Fraction of predictions whose target class is among the k highest scores. A target tied with
 * the k-th score counts as found (only strictly higher scores push it out).
 */
export class TopKAccuracy extends MeanMetric {
  readonly name: string;

  constructor(readonly k: number) {
    super();
    if (!Number.isInteger(k) || k < 1) throw new Error(`TopKAccuracy: k must be a positive integer, got ${k}`);
    this.name = `top${k}Accuracy`;
  }

  protected batchSum(outputs: Tensor, targets: Tensor): Tensor {
    const classes = checkClassScores(this.name, outputs, targets);
    // The target's rank is the number of classes scoring strictly higher than it.
    const targetScore = sum(mul(outputs, oneHot(targets, classes)), -1, true);
    const rank = sum(cast(greater(outputs, targetScore), 'float32'), -1);
    return sum(cast(greater(this.k - 0.5, rank), 'float32'));
  }
}

/**
 * Counts of (target class, predicted class) pairs: matrix[t][p], rows are targets and columns
 * predictions (sklearn's convention). The class count comes from the outputs' last axis.
 */
export class ConfusionMatrix implements Metric {
  readonly name: string = 'confusionMatrix';
  private readonly counts = new RunningSum();
  private classes = 0;

  update(outputs: Tensor, targets: Tensor): void {
    const classes = checkClassScores(this.name, outputs, targets);
    if (this.classes !== 0 && classes !== this.classes) throw new Error(`${this.name}: a batch has ${classes} classes, earlier ones had ${this.classes}`);
    this.classes = classes;
    // onehot(targets)ᵀ · onehot(predictions): one matmul counts every pair.
    this.counts.add(() => matmul(oneHot(reshape(targets, [-1]), classes), oneHot(reshape(argmax(outputs, -1), [-1]), classes), true, false));
  }

  /** The counts so far, [classes][classes] (rows: targets, columns: predictions). */
  matrix(): number[][] {
    const flat = this.counts.read();
    const c = this.classes;
    return Array.from({ length: c }, (_, t) => Array.from({ length: c }, (_, p) => (flat ? Math.round(flat[t * c + p]) : 0)));
  }

  ready(): Promise<void> {
    return this.counts.fetch();
  }

  /** A confusion matrix is not one number: it goes to `History.details`, not to the logs. */
  compute(): Record<string, number> {
    return {};
  }

  details(): number[][] {
    return this.matrix();
  }

  reset(): void {
    this.counts.reset();
    this.classes = 0;
  }
}

/** How precision, recall and F1 combine the classes. */
export type Averaging = 'macro' | 'micro' | 'perClass';

/** Per-class precision, recall and F1 from a confusion matrix, with their macro and micro averages. */
export interface ClassificationReport {
  precision: number[];
  recall: number[];
  f1: number[];
  /** Unweighted means over the classes that occur (in the targets or the predictions), as sklearn's average='macro'. */
  macro: { precision: number; recall: number; f1: number };
  /** From the summed counts; for single-label classification all three equal the accuracy. */
  micro: { precision: number; recall: number; f1: number };
}

/** Precision, recall and F1 per class and averaged, from matrix[target][prediction]. A 0/0 counts as 0 (as sklearn's zero_division=0). */
export function classificationReport(matrix: number[][]): ClassificationReport {
  const c = matrix.length;
  const ratio = (a: number, b: number) => (b === 0 ? 0 : a / b);
  const tp = matrix.map((row, i) => row[i]);
  const actual = matrix.map((row) => row.reduce((a, b) => a + b, 0));
  const predicted = Array.from({ length: c }, (_, j) => matrix.reduce((a, row) => a + row[j], 0));
  const precision = tp.map((t, i) => ratio(t, predicted[i]));
  const recall = tp.map((t, i) => ratio(t, actual[i]));
  const f1 = precision.map((p, i) => ratio(2 * p * recall[i], p + recall[i]));
  const present = Array.from({ length: c }, (_, i) => i).filter((i) => actual[i] > 0 || predicted[i] > 0);
  const mean = (v: number[]) => ratio(present.reduce((a, i) => a + v[i], 0), present.length);
  const micro = ratio(tp.reduce((a, b) => a + b, 0), actual.reduce((a, b) => a + b, 0));
  return { precision, recall, f1, macro: { precision: mean(precision), recall: mean(recall), f1: mean(f1) }, micro: { precision: micro, recall: micro, f1: micro } };
}

/**
 * Precision, recall or F1, macro- or micro-averaged, or per class (logged as `f1Class0`,
 * `f1Class1`, ...). Streams a confusion matrix; computes at the end.
 */
export class PrecisionRecallF1 implements Metric {
  readonly name: string;
  private readonly confusion = new ConfusionMatrix();

  constructor(readonly score: 'precision' | 'recall' | 'f1', readonly average: Averaging = 'macro') {
    if (!['precision', 'recall', 'f1'].includes(score)) throw new Error(`PrecisionRecallF1: score must be 'precision', 'recall' or 'f1', got '${String(score)}'`);
    if (!['macro', 'micro', 'perClass'].includes(average)) throw new Error(`PrecisionRecallF1: average must be 'macro', 'micro' or 'perClass', got '${String(average)}'`);
    const capital = score === 'f1' ? 'F1' : score[0].toUpperCase() + score.slice(1);
    this.name = average === 'macro' ? score : `${average}${capital}`;
  }

  update(outputs: Tensor, targets: Tensor): void {
    this.confusion.update(outputs, targets);
  }

  ready(): Promise<void> {
    return this.confusion.ready();
  }

  compute(): number | Record<string, number> {
    const report = classificationReport(this.confusion.matrix());
    if (this.average === 'perClass') return Object.fromEntries(report[this.score].map((v, i) => [`${this.score}Class${i}`, v]));
    return report[this.average][this.score];
  }

  reset(): void {
    this.confusion.reset();
  }
}
