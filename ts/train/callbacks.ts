/**
 * Callbacks: hooks the training loop calls at epoch ends. Early stopping (with best-weights
 * restore) and LR schedules live here, without a file system; the callbacks that write files
 * (MetricsLogger, ModelCheckpoint) are in metrics-logger.ts and checkpointing.ts.
 */

import type { Optimizer } from '../optim/optimizer.js';
import type { Schedule } from '../optim/schedules.js';
import { keep } from '../engine.js';
import type { Tensor } from '../tensor.js';
import { assign } from '../autograd.js';
import type { Logs, TrainableModel } from './types.js';

/** What a callback can reach during `fit`: the model, the optimizer, and a way to stop. */
export interface TrainingContext {
  model: TrainableModel;
  /** The first (or only) optimizer given to fit; checkpoints save its state. */
  optimizer: Optimizer;
  /** Every optimizer given to fit. */
  optimizers: Optimizer[];
  /** Ends training after the current epoch. */
  stopTraining(reason: string): void;
}

/**
 * What batch-level callbacks receive besides the batch index: the epoch, the global step
 * (counting every training batch since this fit began, for per-step charts), the learning rate,
 * and in `onBatchEnd` the batch's loss plus any scalars a custom step logged.
 */
export interface BatchLogs {
  epoch: number;
  /** Training batches seen by this fit so far, this one included (from 1). */
  globalStep: number;
  lr: number;
  /** The batch's loss (onBatchEnd only; NaN/±Infinity for a batch that was skipped). */
  loss?: number;
  [name: string]: number | undefined;
}

/** BatchLogs keys that count batches rather than measure them (not plotted as scalars). */
export const BATCH_COUNTERS: ReadonlySet<string> = new Set(['epoch', 'globalStep', 'batch', 'size']);

/**
 * Hooks the training loop calls. Epochs and batches count from 1. Every hook may be async; the
 * loop awaits it (keep per-batch hooks cheap: they run on every step).
 */
export interface Callback {
  /** Before the first epoch. */
  onTrainBegin?(ctx: TrainingContext): void | Promise<void>;
  /** Before epoch `epoch` (1-based, counting from `initialEpoch` when resuming) starts its first batch. */
  onEpochBegin?(epoch: number, ctx: TrainingContext): void | Promise<void>;
  /** Before batch `batch` (1-based, within the epoch) of the current epoch is trained on. */
  onBatchBegin?(batch: number, logs: BatchLogs, ctx: TrainingContext): void | Promise<void>;
  /** After batch `batch` was trained on (or skipped): `logs.loss` is its loss. */
  onBatchEnd?(batch: number, logs: BatchLogs, ctx: TrainingContext): void | Promise<void>;
  /**
   * After epoch `epoch` finished, validation included: `logs` holds the epoch's mean loss, its
   * metrics, the `val`-prefixed validation values and `lr`. fit awaits it before the next epoch.
   */
  onEpochEnd?(epoch: number, logs: Logs, ctx: TrainingContext): void | Promise<void>;
  /** After the last epoch (also when a callback stopped training). */
  onTrainEnd?(ctx: TrainingContext): void | Promise<void>;
}

function isBetter(mode: 'min' | 'max', value: number, best: number, minDelta: number): boolean {
  return mode === 'min' ? value < best - minDelta : value > best + minDelta;
}

/** Stops when `monitor` has not improved for `patience` epochs; can restore the best weights. */
export class EarlyStopping implements Callback {
  private best: number;
  private wait = 0;
  private bestWeights: Record<string, Tensor> | null = null;
  /** Set by loadState: the next fit continues this state instead of starting afresh. */
  private resumed = false;
  bestEpoch = 0;
  readonly monitor: string;
  private readonly mode: 'min' | 'max';
  private readonly patience: number;
  private readonly minDelta: number;
  private readonly restoreBestWeights: boolean;

  constructor(options: { monitor?: string; patience?: number; minDelta?: number; mode?: 'min' | 'max'; restoreBestWeights?: boolean } = {}) {
    this.monitor = options.monitor ?? 'valLoss';
    this.mode = options.mode ?? (this.monitor.toLowerCase().includes('acc') ? 'max' : 'min');
    this.patience = options.patience ?? 5;
    this.minDelta = options.minDelta ?? 0;
    this.restoreBestWeights = options.restoreBestWeights ?? true;
    this.best = this.mode === 'min' ? Infinity : -Infinity;
  }

  /** A reused instance starts afresh for each fit (as Keras's does), unless it was just resumed. */
  onTrainBegin(ctx: TrainingContext): void {
    if (this.resumed) {
      this.resumed = false;
      // The run being resumed had already stopped: continuing would train past where it ended.
      if (this.wait >= this.patience) ctx.stopTraining(`early stopping: the resumed run had already stopped (best ${this.monitor} ${this.best.toFixed(4)} at epoch ${this.bestEpoch})`);
      return;
    }
    this.best = this.mode === 'min' ? Infinity : -Infinity;
    this.wait = 0;
    this.bestEpoch = 0;
    this.dropSnapshot();
  }

  /**
   * Compares `logs[monitor]` with the best so far (by more than `minDelta`): an improvement
   * records the epoch (and snapshots the weights); otherwise, after `patience` epochs without one,
   * stops training. Throws if the epoch logs lack `monitor`.
   */
  onEpochEnd(epoch: number, logs: Logs, ctx: TrainingContext): void {
    const value = logs[this.monitor];
    if (value === undefined) throw new Error(`EarlyStopping: no '${this.monitor}' in the epoch logs (have: ${Object.keys(logs).join(', ')})`);
    if (isBetter(this.mode, value, this.best, this.minDelta)) {
      this.best = value;
      this.bestEpoch = epoch;
      this.wait = 0;
      if (this.restoreBestWeights) this.snapshot(ctx.model);
    } else if (++this.wait >= this.patience) {
      ctx.stopTraining(`early stopping: ${this.monitor} has not improved for ${this.patience} epochs (best ${this.best.toFixed(4)} at epoch ${this.bestEpoch})`);
    }
  }

  /** Restores the best epoch's weights (if asked) and frees the snapshot. */
  onTrainEnd(ctx: TrainingContext): void {
    if (this.restoreBestWeights && this.bestWeights) {
      // Values are copied into the live tensors, so the optimizer's view of the parameters holds.
      const live = ctx.model.stateDict();
      for (const [name, t] of Object.entries(this.bestWeights)) if (live[name]) assign(live[name], t);
      console.log(`EarlyStopping: restored the weights of epoch ${this.bestEpoch} (${this.monitor} ${this.best.toFixed(4)})`);
    }
    this.dropSnapshot();
  }

  /** Progress and best-weights snapshot, for checkpoints (the snapshot tensors are shared, not copied). */
  state(): { best: number; wait: number; bestEpoch: number; bestWeights: Record<string, Tensor> | null } {
    return { best: this.best, wait: this.wait, bestEpoch: this.bestEpoch, bestWeights: this.bestWeights };
  }

  /** Restores `state()` (tensors are copied); the next fit continues from it. */
  loadState(s: { best: number; wait: number; bestEpoch: number; bestWeights: Record<string, Tensor> | null }): void {
    this.dropSnapshot();
    this.best = s.best;
    this.wait = s.wait;
    this.bestEpoch = s.bestEpoch;
    this.bestWeights = s.bestWeights && Object.fromEntries(Object.entries(s.bestWeights).map(([k, t]) => [k, keep(t.add(0))]));
    this.resumed = true;
  }

  /**
   * A snapshot shares buffers with the live weights (no copy): optimizer updates are
   * copy-on-write, so the shared buffers keep the snapshot's values.
   */
  private snapshot(model: TrainableModel): void {
    this.dropSnapshot();
    this.bestWeights = Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, keep(t.detach())]));
  }

  private dropSnapshot(): void {
    if (this.bestWeights) for (const t of Object.values(this.bestWeights)) t.dispose();
    this.bestWeights = null;
  }
}

/** Steps an LR schedule once per epoch; ReduceLROnPlateau gets `monitor` (default valLoss). */
export class LRScheduler implements Callback {
  constructor(private readonly schedule: Schedule, private readonly monitor?: string) {}

  /** Steps the schedule, passing `logs[monitor]` when a monitor was given (throws if it is missing). */
  onEpochEnd(_epoch: number, logs: Logs): void {
    if (this.monitor === undefined) {
      this.schedule.step();
      return;
    }
    const value = logs[this.monitor];
    if (value === undefined) throw new Error(`LRScheduler: no '${this.monitor}' in the epoch logs (have: ${Object.keys(logs).join(', ')})`);
    this.schedule.step(value);
  }
}
