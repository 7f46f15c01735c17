/**
 * The optimizer base: parameter groups, gradient clipping, weight decay and state. Each update is
 * one fused Rust kernel per parameter that changes the parameter and its state in place, so the
 * model's parameter tensors (and their place in the autograd graph) never change identity.
 */

import { backend, keep, tidy } from '../engine.js';
import type { Device, Tensor } from '../tensor.js';
import { zeros } from '../ops/creation.js';
import { assign, noGrad } from '../autograd.js';
import { add, div, equal, minimum, mul, square, sqrt, where } from '../ops/elementwise.js';
import { sum } from '../ops/reduce.js';
import { stack } from '../ops/shape.js';

/** Options every optimizer takes: learning rate, weight decay and gradient clipping. */
export interface OptimizerOptions {
  /** Learning rate; each optimizer defaults to PyTorch's (1e-3 for SGD, Adam, AdamW; 1e-2 for RMSProp, AdaGrad). */
  lr?: number;
  /** L2 penalty added to the gradient (AdamW instead decays the weights directly). */
  weightDecay?: number;
  /** Scale all gradients so their global L2 norm is at most this. */
  clipNorm?: number;
  /** Clamp each gradient element to [-clipValue, clipValue]. */
  clipValue?: number;
}

/** Parameters with their own learning rate / weight decay (e.g. a fine-tuned body and a new head). */
export interface ParamGroup {
  params: Tensor[];
  lr?: number;
  weightDecay?: number;
}

interface Group {
  params: Tensor[];
  /** This group's lr as a multiple of the optimizer's lr, so schedules keep the ratios. */
  lrScale: number;
  weightDecay: number;
}

/** What `state()` returns and `loadState()` takes: plain numbers plus state tensors per parameter. */
export interface OptimizerState {
  kind: string;
  step: number;
  lr: number;
  /** slots[i] are the state tensors of parameter i (in `parameters` order). */
  slots: Tensor[][];
  /** steps[i]: updates parameter i has received (its bias correction / first-step clock). */
  steps: number[];
}

/** The base of the optimizers: parameter groups, the step count and learning rate, state for checkpoints, and one fused update kernel per parameter. */
export abstract class Optimizer {
  /** The current base learning rate; schedules set it. */
  lr: number;
  /** Completed steps. */
  stepCount = 0;
  protected readonly options: OptimizerOptions;
  private readonly groups: Group[];
  private readonly slots = new Map<Tensor, Tensor[]>();
  /**
   * Updates each parameter has received. Per parameter, as in PyTorch: one whose first gradient
   * arrives late (a frozen layer unfrozen, a branch unused at first) starts its own clock then.
   */
  private readonly paramSteps = new Map<Tensor, number>();

  /** `defaultLr`: the subclass's lr when options has none (PyTorch's default for that optimizer). */
  constructor(params: Tensor[] | ParamGroup[], options: OptimizerOptions, defaultLr: number) {
    if (options === null || typeof options !== 'object') throw new Error(`${new.target.name}: options must be an object (or omitted), got ${String(options)}`);
    if (!Array.isArray(params)) throw new Error(`${new.target.name}: params must be an array of tensors or parameter groups (e.g. model.parameters()), got ${typeof params}`);
    const lr = options.lr ?? defaultLr;
    if (!(lr > 0)) throw new Error(`${new.target.name}: lr must be > 0, got ${options.lr}`);
    options = { ...options, lr };
    this.options = options;
    this.lr = lr;
    const groups: ParamGroup[] = params.length > 0 && !('params' in (params[0] as object)) ? [{ params: params as Tensor[] }] : (params as ParamGroup[]);
    this.groups = groups.map((g) => ({
      params: g.params,
      lrScale: (g.lr ?? lr) / lr,
      weightDecay: g.weightDecay ?? options.weightDecay ?? 0,
    }));
    // A parameter listed twice would be updated twice per step (twice the learning rate, one
    // moment buffer fed twice). PyTorch refuses it across groups and warns within one; here it is
    // always an error, which names both places.
    const seen = new Map<Tensor, string>();
    this.groups.forEach((g, gi) => g.params.forEach((p, pi) => {
      const where = this.groups.length > 1 ? `group ${gi}, parameter ${pi}` : `parameter ${pi}`;
      const first = seen.get(p);
      if (first !== undefined) throw new Error(`${new.target.name}: the same parameter (${p.dtype} [${p.shape.join(', ')}]) is listed twice, as ${first} and as ${where}; each parameter may appear once`);
      seen.set(p, where);
    }));
    for (const p of this.parameters) {
      if (p.dtype !== "float32") throw new Error(`${new.target.name}: parameters must be float32, got ${p.dtype} [${p.shape.join(', ')}]`);
    }
  }

  /** 'sgd', 'adam', ... */
  abstract get kind(): string;
  /** State tensors per parameter (momentum buffer, moments, ...). */
  protected abstract slotCount(): number;
  /**
   * One fused in-place update of parameter p; `step` is p's own update count, from 1. `grad` is
   * already scaled by clipNorm's coefficient (the kernels' `scale` stays 1: the coefficient is a
   * tensor on the device, not a number).
   */
  protected abstract update(p: Tensor, grad: Tensor, slots: Tensor[], lr: number, weightDecay: number, clipValue: number, step: number): void;

  /** Every parameter, in group order. */
  get parameters(): Tensor[] {
    return this.groups.flatMap((g) => g.params);
  }

  /** Clears every parameter's accumulated gradient. */
  zeroGrad(): void {
    for (const p of this.parameters) if (!p.isDisposed) p.zeroGrad();
  }

  /** Applies one update from the accumulated gradients (parameters without one are skipped). */
  step(): void {
    this.applyStep();
  }

  /** `step()`; returns the parameters it updated. */
  private applyStep(): Tensor[] {
    this.stepCount++;
    const stepped: Tensor[] = [];
    tidy(() => {
      const grads = this.parameters.map((p) => p.grad);
      const coefficient = this.clipCoefficient(grads);
      const clipValue = this.options.clipValue ?? Infinity;
      let i = 0;
      for (const group of this.groups) {
        for (const p of group.params) {
          const g = grads[i++];
          if (g === null) continue;
          const step = (this.paramSteps.get(p) ?? 0) + 1;
          this.paramSteps.set(p, step);
          stepped.push(p);
          const clipped = coefficient === null ? g : mul(g, coefficient);
          this.update(p, clipped, this.slotsFor(p), this.lr * group.lrScale, group.weightDecay, clipValue, step);
        }
      }
    });
    return stepped;
  }

  /**
   * `step()`, kept only where `check` (a scalar []) is finite, decided on the device: for a caller
   * that must not wait for a read to know whether the gradients are finite (fit's
   * `manualOptimization`; a WebGPU page cannot read synchronously). Each parameter and state
   * tensor is copied before the update and put back where `check` is NaN. Once the caller has
   * read `check` and found NaN, `undoStepCount(returned)` turns the step counters back too.
   * Returns the parameters the step updated.
   */
  stepIfFinite(check: Tensor): Tensor[] {
    const touched = this.parameters.filter((p) => p.grad !== null).flatMap((p) => [p, ...this.slotsFor(p)]);
    // Copies (x·1 keeps every bit, NaN and -0 included), recorded by no graph.
    const before = noGrad(() => touched.map((t) => keep(mul(t, 1))));
    try {
      const stepped = this.applyStep();
      noGrad(() => tidy(() => {
        const finite = equal(check, check);
        touched.forEach((t, i) => assign(t, where(finite, t, before[i])));
      }));
      return stepped;
    } finally {
      for (const t of before) t.dispose();
    }
  }

  /** Turns back the counters of a step whose update was undone (`stepped`: what `stepIfFinite` returned). */
  undoStepCount(stepped: readonly Tensor[]): void {
    this.stepCount--;
    for (const p of stepped) this.paramSteps.set(p, this.paramSteps.get(p)! - 1);
  }

  /**
   * Global-norm clipping, as torch.nn.utils.clip_grad_norm_: the scalar [] min(1, clipNorm /
   * (norm + 1e-6)) over all gradients together, computed where they are, so that a step on a GPU
   * reads nothing back (a WebGPU page cannot read synchronously at all). Null without clipNorm.
   */
  private clipCoefficient(grads: Array<Tensor | null>): Tensor | null {
    const maxNorm = this.options.clipNorm;
    if (maxNorm === undefined) return null;
    const present = grads.filter((g): g is Tensor => g !== null);
    if (present.length === 0) return null;
    const norm = sqrt(sum(stack(present.map((g) => sum(square(g))))));
    // In host memory the norm costs nothing to read, so a non-finite one is an Error naming the
    // step. A GPU does not wait for it (nor does torch's clip_grad_norm_): there the update holds
    // NaN, and fit's gradient guard (onNonFiniteGradients) stops or skips such a step before it.
    if (present[0].device === 'cpu') {
      const value = norm.dataSync()[0];
      if (!Number.isFinite(value)) throw new Error(`${this.kind}: the gradient norm is ${value} (NaN or Inf in the gradients) at step ${this.stepCount}`);
    }
    return minimum(div(maxNorm, add(norm, 1e-6)), 1);
  }

  private slotsFor(p: Tensor): Tensor[] {
    let s = this.slots.get(p);
    if (s === undefined) {
      // State lives where its parameter lives (a model moved with model.to('gpu') included).
      s = Array.from({ length: this.slotCount() }, () => {
        const z = keep(zeros([...p.shape]));
        z.moveTo(p.device);
        return z;
      });
      this.slots.set(p, s);
    }
    return s;
  }

  /** Step count, lr and state tensors (shared, not copied: save them, don't dispose them). */
  state(): OptimizerState {
    const params = this.parameters;
    return { kind: this.kind, step: this.stepCount, lr: this.lr, slots: params.map((p) => this.slotsFor(p)), steps: params.map((p) => this.paramSteps.get(p) ?? 0) };
  }

  /** Restores what `state()` returned (e.g. from a checkpoint); tensors are copied in. */
  loadState(state: OptimizerState): void {
    if (state.kind !== this.kind) throw new Error(`${this.kind}.loadState: the state is from a '${state.kind}' optimizer`);
    const params = this.parameters;
    if (state.slots.length !== params.length) {
      throw new Error(`${this.kind}.loadState: the state has ${state.slots.length} parameters, this optimizer has ${params.length}`);
    }
    params.forEach((p, i) => {
      const incoming = state.slots[i];
      if (incoming.length !== this.slotCount() || incoming.some((t) => t.shape.join() !== p.shape.join())) {
        throw new Error(`${this.kind}.loadState: state of parameter ${i} does not match its shape [${p.shape.join(', ')}]`);
      }
      const slots = this.slotsFor(p);
      incoming.forEach((t, j) => assign(slots[j], t));
    });
    params.forEach((p, i) => this.paramSteps.set(p, state.steps?.[i] ?? state.step));
    this.stepCount = state.step;
    this.lr = state.lr;
  }

  /** Moves the state tensors to `device` (model.to moves the parameters). Returns this. */
  to(device: Device): this {
    for (const s of this.slots.values()) for (const t of s) t.moveTo(device);
    return this;
  }

  /** Frees the state tensors. */
  dispose(): void {
    for (const s of this.slots.values()) for (const t of s) t.dispose();
    this.slots.clear();
  }

  protected get impl() {
    return backend().impl;
  }
}
