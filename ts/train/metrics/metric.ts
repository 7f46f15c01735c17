/**
 * The streaming metric interface. A metric sees an epoch batch by batch and answers once at the
 * end, so the loop never reads a metric back per batch: `update` keeps running sums as tensors on
 * the device, `compute` reads them back once.
 */

import { keep, tidy } from '../../engine.js';
import type { Tensor } from '../../tensor.js';
import { add } from '../../ops/elementwise.js';

/**
 * A metric over an epoch (or over everything `evaluate` sees).
 *
 *   class MeanPrediction implements train.Metric {
 *     readonly name = 'meanPrediction';
 *     private total = 0;
 *     private count = 0;
 *     update(outputs: Tensor) { this.total += outputs.sum().dataSync()[0]; this.count += outputs.size; }
 *     compute() { return this.total / this.count; }
 *     reset() { this.total = 0; this.count = 0; }
 *   }
 *   await fit(model, data, { ..., metrics: ['accuracy', new MeanPrediction()] });
 *
 * fit calls `reset()` before each epoch and before validation, `update()` after each step (inside
 * the step's `tidy`: a tensor kept across batches must be passed to `kiln.keep`, and freed in
 * `reset`), then `await ready()` and `compute()` at the epoch's end. A built-in metric reads
 * nothing back in `update`, and reads its sums in `ready` with `await t.data()`, so that `compute`
 * also works where a synchronous read cannot (the GPU backend in a page: WebGPU).
 */
export interface Metric {
  /** The log key: 'accuracy' logs `accuracy` for training and `valAccuracy` for validation. */
  readonly name: string;
  /** Adds one batch. outputs: the model's outputs; targets: the batch's targets. */
  update(outputs: Tensor, targets: Tensor): void;
  /** The value so far: one number (logged under `name`) or several named numbers (logged under their names). */
  compute(): number | Record<string, number>;
  /**
   * Reads back, asynchronously, what `compute` needs; fit and evaluate await it before `compute`.
   * Optional: without it `compute` reads synchronously (dataSync), which is fine everywhere but
   * on WebGPU in a page, where only `await t.data()` can read a GPU tensor.
   */
  ready?(): Promise<void>;
  /** Forgets everything seen (and frees what it keeps). */
  reset(): void;
  /** A value that is not a number (a confusion matrix), kept in `History.details` per epoch. */
  details?(): unknown;
}

/**
 * Sums tensors batch after batch on the device; `read()` returns the total with one readback.
 * The building block of the built-in metrics.
 */
export class RunningSum {
  private total: Tensor | null = null;
  /** The total as `fetch` read it; dropped by the next `add` or `reset`. */
  private fetched: Float32Array | Int32Array | null = null;

  /** Adds `value` (made inside a tidy of its own, so the batch's temporaries are freed). */
  add(value: () => Tensor): void {
    const next = tidy(() => {
      const v = value();
      return this.total ? add(this.total, v) : v;
    });
    this.total?.dispose();
    this.total = keep(next);
    this.fetched = null;
  }

  /** Reads the total with `await t.data()`, so that `read()` needs no synchronous readback. */
  async fetch(): Promise<void> {
    this.fetched = this.total ? ((await this.total.data()) as Float32Array | Int32Array) : null;
  }

  /** The total as numbers (null before the first add): what `fetch` read, else read now. */
  read(): Float32Array | Int32Array | null {
    if (this.fetched !== null) return this.fetched;
    return this.total ? (this.total.dataSync() as Float32Array | Int32Array) : null;
  }

  /** Frees the running total; the next `add` starts a new sum and `read()` returns null until then. */
  reset(): void {
    this.total?.dispose();
    this.total = null;
    this.fetched = null;
  }
}

/**
 * A mean over the elements of the targets of everything seen: subclasses say what each batch adds
 * to the sum (on the device) and how the mean becomes the value.
 */
export abstract class MeanMetric implements Metric {
  abstract readonly name: string;
  private readonly total = new RunningSum();
  private count = 0;

  /** Checks the batch, then returns the sum it adds, a tensor []. */
  protected abstract batchSum(outputs: Tensor, targets: Tensor): Tensor;

  /** The value from the mean (identity by default). */
  protected finish(mean: number): number {
    return mean;
  }

  update(outputs: Tensor, targets: Tensor): void {
    this.total.add(() => this.batchSum(outputs, targets));
    this.count += targets.size;
  }

  ready(): Promise<void> {
    return this.total.fetch();
  }

  compute(): number {
    return this.finish((this.total.read()?.[0] ?? NaN) / this.count);
  }

  reset(): void {
    this.total.reset();
    this.count = 0;
  }
}

/** "logits float32 [4, 3] and targets int32 [4]" for error messages. */
export function describePair(outputs: Tensor, targets: Tensor, outputName = 'outputs'): string {
  return `${outputName} ${outputs.dtype} [${outputs.shape.join(', ')}] and targets ${targets.dtype} [${targets.shape.join(', ')}]`;
}

/** Checks class-score outputs [..., classes] against integer class targets [...]. */
export function checkClassScores(metric: string, outputs: Tensor, targets: Tensor): number {
  const lead = outputs.shape.slice(0, -1);
  const ok = outputs.shape.length >= 1 && targets.dtype === 'int32' && lead.length === targets.shape.length && lead.every((d, i) => d === targets.shape[i]);
  if (!ok) {
    throw new Error(`${metric}: expected class scores [..., classes] and int32 class targets [...] (the same leading shape), got ${describePair(outputs, targets)}`);
  }
  return outputs.shape[outputs.shape.length - 1];
}

/** Runs a metric over one batch and returns its value (the one-shot form of a streaming metric). */
export function once<M extends Metric>(metric: M, outputs: Tensor, targets: Tensor): ReturnType<M['compute']> {
  try {
    metric.update(outputs, targets);
    return metric.compute() as ReturnType<M['compute']>;
  } finally {
    metric.reset();
  }
}
