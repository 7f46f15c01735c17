/**
 * The TensorBoard callback: what Keras's `callbacks.TensorBoard` and Lightning's TensorBoardLogger
 * record, written as event files that the `tensorboard` program reads:
 * - per step (when the loop calls onBatchEnd): `batch/loss` and the other batch logs, `batch/lr`;
 * - per epoch: `epoch/<name>` for every epoch log (loss, metrics, valLoss, ..., lr);
 * - per epoch: histograms `weights/<name>` of every parameter and `gradients/<name>` of its
 *   gradient from the epoch's last step;
 * - per epoch: the `samples` image when a sample function is given (generated images).
 *
 *   await kiln.fit(model, data, { ..., callbacks: [new kiln.train.TensorBoard('runs/mnist')] });
 *   // then: tensorboard --logdir runs
 */

import { noGrad } from '../../autograd.js';
import { tidy } from '../../engine.js';
import type { GridOptions } from '../../viz/grid.js';
import { BATCH_COUNTERS, type BatchLogs, type Callback, type TrainingContext } from '../callbacks.js';
import { drawSamples, type SampleFn } from '../samples.js';
import type { Logs } from '../types.js';
import { SummaryWriter } from './writer.js';

/** What the {@link TensorBoard} callback records beyond the epoch scalars, and how often. */
export interface TensorBoardOptions {
  /** Write weight and gradient histograms every this many epochs (0: never; default 1). */
  histogramFreq?: number;
  /** Buckets per histogram (default 30). */
  histogramBins?: number;
  /** Generated samples to store as the `samples` image at each epoch's end. */
  samples?: SampleFn;
  /** How the samples are laid out (columns, scale, ...). */
  sampleGrid?: GridOptions;
  /** Write per-step scalars when the loop reports batches (default true). */
  batchScalars?: boolean;
}

/**
 * A training callback that writes TensorBoard event files to `logDir`: per-step and per-epoch
 * scalars, weight and gradient histograms and, optionally, generated samples as an image.
 * View them with `tensorboard --logdir <logDir or its parent>`.
 */
export class TensorBoard implements Callback {
  /** The writer of the current (or last) run; null before training begins. */
  writer: SummaryWriter | null = null;
  private step = 0;

  /** `logDir`: the run's directory (point `tensorboard --logdir` at it or at its parent). */
  constructor(readonly logDir: string, private readonly options: TensorBoardOptions = {}) {
    if (typeof logDir !== 'string' || logDir === '') throw new Error(`TensorBoard: logDir must be a directory path, got ${String(logDir)}`);
    const freq = options.histogramFreq ?? 1;
    if (!Number.isInteger(freq) || freq < 0) throw new Error(`TensorBoard: histogramFreq must be a non-negative integer, got ${freq}`);
  }

  /** Each fit writes a new event file in logDir (TensorBoard shows them as one run). */
  onTrainBegin(): void {
    this.writer?.close();
    this.writer = new SummaryWriter(this.logDir);
    this.step = 0;
  }

  /** Per-step scalars at a global step that keeps counting across epochs. */
  onBatchEnd(_batch: number, logs: BatchLogs, ctx?: TrainingContext): void {
    if (!this.writer || this.options.batchScalars === false) return;
    this.step = logs.globalStep ?? this.step + 1;
    const scalars: Record<string, number> = {};
    for (const [k, v] of Object.entries(logs)) if (typeof v === 'number' && Number.isFinite(v) && !BATCH_COUNTERS.has(k)) scalars[`batch/${k}`] = v;
    if (ctx && scalars['batch/lr'] === undefined) scalars['batch/lr'] = ctx.optimizer.lr;
    this.writer.addScalars(scalars, this.step);
  }

  /**
   * Writes every epoch log as `epoch/<name>` at step `epoch`, the weight and gradient histograms
   * every `histogramFreq` epochs, and the `samples` image when a sample function was given.
   */
  onEpochEnd(epoch: number, logs: Logs, ctx: TrainingContext): void {
    const writer = this.writer;
    if (!writer) return;
    writer.addScalars(Object.fromEntries(Object.entries(logs).map(([k, v]) => [`epoch/${k}`, v])), epoch);
    const freq = this.options.histogramFreq ?? 1;
    if (freq > 0 && epoch % freq === 0) this.writeHistograms(writer, epoch, ctx);
    if (this.options.samples) writer.addImage('samples', drawSamples(this.options.samples, epoch, ctx, this.options.sampleGrid), epoch);
  }

  /** Closes the event file. */
  onTrainEnd(): void {
    this.writer?.close();
  }

  /** Weights, and the gradients the last step left on them (parameters without one are skipped). */
  private writeHistograms(writer: SummaryWriter, epoch: number, ctx: TrainingContext): void {
    const bins = this.options.histogramBins ?? 30;
    noGrad(() =>
      tidy(() => {
        for (const [name, p] of Object.entries(ctx.model.stateDict())) {
          writer.addHistogram(`weights/${name}`, p.dataSync(), epoch, bins);
          const g = p.requiresGrad ? p.grad : null;
          if (g) writer.addHistogram(`gradients/${name}`, g.dataSync(), epoch, bins);
        }
      }),
    );
  }
}
