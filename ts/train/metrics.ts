/**
 * Metrics accumulated over an epoch inside Rust: each batch adds tensors, and the epoch's values
 * are read back once, so a metric never costs a boundary crossing per batch.
 */

import { keep, tidy } from '../engine.js';
import type { Tensor } from '../tensor.js';

import { add, equal, mul } from '../ops/elementwise.js';
import { argmax, sum } from '../ops/reduce.js';
import { cast, stack } from '../ops/shape.js';

/** Metrics `fit` and `evaluate` can compute besides the loss: 'accuracy' (argmax of the output against int32 targets). */
export type MetricName = 'accuracy';

/** Number of rows whose argmax over the last axis equals the int32 label. outputs [batch, classes], labels [batch] -> [] */
export function correctCount(outputs: Tensor, labels: Tensor): Tensor {
  return tidy(() => sum(cast(equal(argmax(outputs, -1), labels), 'float32')));
}

/** Running sums of loss·batch, metric counts and samples, kept as tensors until `read()`. */
export class EpochAccumulator {
  private totals: Tensor | null = null;
  private samples = 0;

  constructor(private readonly metrics: MetricName[]) {}

  /** Adds one batch: its mean loss and outputs/labels for the metrics. */
  add(loss: Tensor, outputs: Tensor, labels: Tensor): void {
    const batch = labels.shape[0] ?? 1;
    this.samples += batch;
    const next = tidy(() => {
      const parts = [mul(loss, batch)];
      for (const m of this.metrics) if (m === 'accuracy') parts.push(correctCount(outputs, labels));
      const row = stack(parts);
      return this.totals ? add(this.totals, row) : row;
    });
    this.totals?.dispose();
    this.totals = keep(next);
  }

  /** Epoch means: { loss, accuracy, ... } (one readback). */
  read(prefix = ''): Record<string, number> {
    if (!this.totals || this.samples === 0) return {};
    const values = this.totals.dataSync();
    const out: Record<string, number> = { [prefix ? `${prefix}Loss` : 'loss']: values[0] / this.samples };
    this.metrics.forEach((m, i) => (out[prefix ? `${prefix}${m[0].toUpperCase()}${m.slice(1)}` : m] = values[i + 1] / this.samples));
    return out;
  }

  dispose(): void {
    this.totals?.dispose();
    this.totals = null;
  }
}

