/**
 * Checkpointing for `fit`: save weights, optimizer state, schedule and epoch at the end of each
 * epoch (atomically: a run killed mid-write keeps the previous checkpoint), and resume from it.
 */

import { existsSync } from 'node:fs';
import { assign } from '../autograd.js';
import { checkCompatible, disposeCheckpoint, loadCheckpoint, loadTensors, saveCheckpoint, saveTensors } from '../io/index.js';
import { dispose } from '../engine.js';
import type { Optimizer } from '../optim/optimizer.js';
import type { Schedule } from '../optim/schedules.js';
import type { Callback, EarlyStopping, TrainingContext } from './callbacks.js';
import type { Logs, TrainableModel } from './types.js';

/** Options of `ModelCheckpoint`: what else to save with the model, and when. */
export interface ModelCheckpointOptions {
  /** Saved with the checkpoint, so a resumed run continues the same schedule. */
  schedule?: Schedule;
  /** Saved too (patience counter, best score, best-weights snapshot), so a resumed run stops where the uninterrupted one would. */
  earlyStopping?: EarlyStopping;
  /** Only write when `monitor` improves (default: every epoch, which is what resuming needs). */
  saveBestOnly?: boolean;
  /** The epoch log that saveBestOnly watches (default 'valLoss'). */
  monitor?: string;
  /** Whether lower or higher `monitor` is better (default: 'max' for accuracies, else 'min'). */
  mode?: 'min' | 'max';
}

/** Writes a checkpoint file at the end of each epoch. */
export class ModelCheckpoint implements Callback {
  private best: number;
  private readonly mode: 'min' | 'max';
  private readonly monitor: string;

  constructor(private readonly path: string, private readonly options: ModelCheckpointOptions = {}) {
    this.monitor = options.monitor ?? 'valLoss';
    this.mode = options.mode ?? (this.monitor.toLowerCase().includes('acc') ? 'max' : 'min');
    this.best = this.mode === 'min' ? Infinity : -Infinity;
  }

  /**
   * Writes the checkpoint (model, optimizer, schedule, epoch and EarlyStopping progress) to the
   * path, replacing the last one; with `saveBestOnly`, only when `logs[monitor]` beat the best so far.
   */
  onEpochEnd(epoch: number, logs: Logs, ctx: TrainingContext): void {
    if (this.options.saveBestOnly) {
      const value = logs[this.monitor];
      if (value === undefined) throw new Error(`ModelCheckpoint: no '${this.monitor}' in the epoch logs (have: ${Object.keys(logs).join(', ')})`);
      const better = this.mode === 'min' ? value < this.best : value > this.best;
      if (!better) return;
      this.best = value;
    }
    const es = this.options.earlyStopping?.state();
    // The best-weights snapshot goes to its own file, written (atomically) before the checkpoint
    // that refers to it, so a crash between the two never pairs a checkpoint with a stale snapshot.
    if (es?.bestWeights) saveTensors(bestWeightsPath(this.path), es.bestWeights, { epoch: String(es.bestEpoch) });
    saveCheckpoint(this.path, {
      model: ctx.model.stateDict(),
      optimizer: ctx.optimizer.state(),
      schedule: this.options.schedule?.state(),
      epoch,
      extra: es ? { earlyStopping: { best: es.best, wait: es.wait, bestEpoch: es.bestEpoch, hasWeights: es.bestWeights !== null } } : undefined,
    });
  }
}

function bestWeightsPath(checkpoint: string): string {
  return checkpoint.replace(/(\.safetensors)?$/, '.best.safetensors');
}

/**
 * Restores model weights, optimizer state and schedule from a checkpoint written by
 * ModelCheckpoint, in place. Returns the epoch to continue from (pass it as `fit`'s
 * `initialEpoch`), or 1 when there is no checkpoint file yet. A checkpoint from a different
 * model is rejected, listing the mismatched keys.
 */
export function resume(path: string, model: TrainableModel, optimizer: Optimizer, schedule?: Schedule, earlyStopping?: EarlyStopping): number {
  if (!existsSync(path)) return 1;
  const ckpt = loadCheckpoint(path);
  try {
    const live = model.stateDict();
    checkCompatible(live, ckpt.model);
    for (const [name, t] of Object.entries(ckpt.model)) assign(live[name], t);
    if (ckpt.optimizer) optimizer.loadState(ckpt.optimizer);
    if (ckpt.schedule && schedule) schedule.loadState(ckpt.schedule);
    const es = (ckpt.extra as { earlyStopping?: { best: number; wait: number; bestEpoch: number; hasWeights: boolean } } | undefined)?.earlyStopping;
    if (es && earlyStopping) {
      const bestWeights = es.hasWeights ? loadTensors(bestWeightsPath(path)).tensors : null;
      earlyStopping.loadState({ ...es, bestWeights });
      if (bestWeights) dispose(bestWeights);
    }
    return ckpt.epoch + 1;
  } finally {
    disposeCheckpoint(ckpt);
  }
}
