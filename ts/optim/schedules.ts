/**
 * Learning-rate schedules. Each sets `optimizer.lr` from the epoch (or step) it is told about;
 * formulas as in PyTorch's StepLR, linear warmup + cosine decay, and ReduceLROnPlateau.
 */

import type { Optimizer } from './optimizer.js';

/** A learning-rate schedule: it sets its optimizer's `lr` at each `step`. */
export interface Schedule {
  /** Called once per epoch (or step) with the validation metric if the schedule uses one. */
  step(metric?: number): void;
  /** For checkpoints. */
  state(): Record<string, number>;
  /** Restores what `state()` returned (resuming from a checkpoint). */
  loadState(state: Record<string, number>): void;
}

/** lr = base · gamma^floor(epoch / stepSize). */
export class StepDecay implements Schedule {
  private epoch = 0;
  private readonly base: number;
  constructor(private readonly optimizer: Optimizer, private readonly stepSize: number, private readonly gamma = 0.1) {
    if (!(stepSize >= 1)) throw new Error(`StepDecay: stepSize must be >= 1, got ${stepSize}`);
    this.base = optimizer.lr;
  }
  step(): void {
    this.epoch++;
    this.optimizer.lr = this.base * this.gamma ** Math.floor(this.epoch / this.stepSize);
  }
  state(): Record<string, number> { return { epoch: this.epoch }; }
  loadState(s: Record<string, number>): void { this.epoch = s.epoch - 1; this.step(); }
}

/**
 * Linear warmup from 0 to base over `warmup` steps, then cosine decay to `minLr` at `total`.
 * lr(t) = base·t/warmup for t < warmup; minLr + ½(base - minLr)(1 + cos(π(t - warmup)/(total - warmup))).
 */
export class WarmupCosine implements Schedule {
  private t = 0;
  private readonly base: number;
  constructor(private readonly optimizer: Optimizer, private readonly warmup: number, private readonly total: number, private readonly minLr = 0) {
    if (!(total > warmup && warmup >= 0)) throw new Error(`WarmupCosine: needs 0 <= warmup < total, got warmup=${warmup}, total=${total}`);
    this.base = optimizer.lr;
    this.apply();
  }
  /** lr at step t (exported for tests and plots). */
  lrAt(t: number): number {
    if (t < this.warmup) return (this.base * t) / this.warmup;
    const progress = Math.min(1, (t - this.warmup) / (this.total - this.warmup));
    return this.minLr + 0.5 * (this.base - this.minLr) * (1 + Math.cos(Math.PI * progress));
  }
  private apply(): void { this.optimizer.lr = this.lrAt(this.t); }
  step(): void { this.t++; this.apply(); }
  state(): Record<string, number> { return { t: this.t }; }
  loadState(s: Record<string, number>): void { this.t = s.t; this.apply(); }
}

/**
 * Multiplies lr by `factor` when the metric has not improved (by more than `threshold`,
 * relative) for `patience` epochs; never below `minLr`; waits `cooldown` epochs after a cut.
 */
export class ReduceLROnPlateau implements Schedule {
  private best: number;
  private badEpochs = 0;
  private cooldownLeft = 0;
  private readonly mode: 'min' | 'max';
  private readonly factor: number;
  private readonly patience: number;
  private readonly threshold: number;
  private readonly minLr: number;
  private readonly cooldown: number;
  private readonly verbose: boolean;

  constructor(private readonly optimizer: Optimizer, options: { mode?: 'min' | 'max'; factor?: number; patience?: number; threshold?: number; minLr?: number; cooldown?: number; verbose?: boolean } = {}) {
    this.mode = options.mode ?? 'min';
    this.factor = options.factor ?? 0.1;
    this.patience = options.patience ?? 10;
    this.threshold = options.threshold ?? 1e-4;
    this.minLr = options.minLr ?? 0;
    this.cooldown = options.cooldown ?? 0;
    this.verbose = options.verbose ?? false;
    if (!(this.factor > 0 && this.factor < 1)) throw new Error(`ReduceLROnPlateau: factor must be in (0, 1), got ${this.factor}`);
    this.best = this.mode === 'min' ? Infinity : -Infinity;
  }

  private improved(metric: number): boolean {
    return this.mode === 'min' ? metric < this.best * (1 - Math.sign(this.best) * this.threshold) : metric > this.best * (1 + Math.sign(this.best) * this.threshold);
  }

  step(metric?: number): void {
    if (metric === undefined || !Number.isFinite(metric)) throw new Error(`ReduceLROnPlateau.step: needs a finite metric, got ${metric}`);
    if (this.improved(metric) || !Number.isFinite(this.best)) {
      this.best = metric;
      this.badEpochs = 0;
    } else {
      this.badEpochs++;
    }
    if (this.cooldownLeft > 0) {
      this.cooldownLeft--;
      this.badEpochs = 0;
    }
    if (this.badEpochs > this.patience) {
      const next = Math.max(this.optimizer.lr * this.factor, this.minLr);
      if (next < this.optimizer.lr) {
        if (this.verbose) console.log(`ReduceLROnPlateau: lr ${this.optimizer.lr.toExponential(2)} -> ${next.toExponential(2)}`);
        this.optimizer.lr = next;
      }
      this.cooldownLeft = this.cooldown;
      this.badEpochs = 0;
    }
  }
  state(): Record<string, number> { return { best: this.best, badEpochs: this.badEpochs, cooldownLeft: this.cooldownLeft }; }
  loadState(s: Record<string, number>): void { this.best = s.best; this.badEpochs = s.badEpochs; this.cooldownLeft = s.cooldownLeft; }
}
