/**
 * Regression metrics over predictions and float targets of the same shape. MAE, MSE and RMSE
 * average over every element; R² is computed per output column (the last axis of a
 * [batch, outputs] target; a [batch] target is one column) and averaged, as sklearn's r2_score.
 */

import { keep, tidy } from '../../engine.js';
import type { Tensor } from '../../tensor.js';
import { abs, square, sub } from '../../ops/elementwise.js';
import { mean, sum } from '../../ops/reduce.js';
import { reshape, stack } from '../../ops/shape.js';
import { detach } from '../../autograd.js';
import { describePair, MeanMetric, RunningSum, type Metric } from './metric.js';

function checkSameShape(metric: string, outputs: Tensor, targets: Tensor): void {
  if (outputs.shape.length !== targets.shape.length || outputs.shape.some((d, i) => d !== targets.shape[i]) || targets.dtype !== 'float32') {
    throw new Error(`${metric}: expected predictions and float32 targets of the same shape, got ${describePair(outputs, targets, 'predictions')}`);
  }
}

/** Mean absolute error, mean squared error or its root, over all elements. */
export class ErrorMetric extends MeanMetric {
  readonly name: string;

  constructor(readonly kind: 'mae' | 'mse' | 'rmse') {
    super();
    if (!['mae', 'mse', 'rmse'].includes(kind)) throw new Error(`ErrorMetric: kind must be 'mae', 'mse' or 'rmse', got '${String(kind)}'`);
    this.name = kind;
  }

  protected batchSum(outputs: Tensor, targets: Tensor): Tensor {
    checkSameShape(this.name, outputs, targets);
    const e = sub(outputs, targets);
    return sum(this.kind === 'mae' ? abs(e) : square(e));
  }

  protected override finish(mean: number): number {
    return this.kind === 'rmse' ? Math.sqrt(mean) : mean;
  }
}

/**
 * The coefficient of determination, 1 - Σ(y - ŷ)² / Σ(y - ȳ)², per column and averaged.
 * Sums of y are taken around the first batch's column means, so Σ(y - ȳ)² does not lose its
 * digits to cancellation when the targets sit far from zero.
 */
export class R2 implements Metric {
  readonly name: string = 'r2';
  private readonly sums = new RunningSum();
  private shift: Tensor | null = null;
  private count = 0;

  update(outputs: Tensor, targets: Tensor): void {
    checkSameShape(this.name, outputs, targets);
    const columns = targets.shape.length <= 1 ? 1 : targets.size / targets.shape[0];
    const y = (t: Tensor) => reshape(detach(t), [-1, columns]);
    if (this.shift === null) this.shift = keep(tidy(() => mean(y(targets), 0)));
    const shift = this.shift;
    this.count += targets.size / columns;
    this.sums.add(() => {
      const centred = sub(y(targets), shift);
      // rows: Σ(y - c), Σ(y - c)², Σ(y - ŷ)², each [columns]
      return stack([sum(centred, 0), sum(square(centred), 0), sum(square(sub(y(targets), y(outputs))), 0)]);
    });
  }

  ready(): Promise<void> {
    return this.sums.fetch();
  }

  compute(): number {
    const s = this.sums.read();
    if (!s) return NaN;
    const columns = s.length / 3;
    let total = 0;
    for (let j = 0; j < columns; j++) {
      const [sy, syy, sres] = [s[j], s[columns + j], s[2 * columns + j]];
      const ssTot = syy - (sy * sy) / this.count;
      // sklearn: a constant column scores 1 when predicted exactly, else 0.
      total += ssTot === 0 ? (sres === 0 ? 1 : 0) : 1 - sres / ssTot;
    }
    return total / columns;
  }

  reset(): void {
    this.sums.reset();
    this.shift?.dispose();
    this.shift = null;
    this.count = 0;
  }
}
