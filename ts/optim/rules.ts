/** The optimizers: each a small subclass that picks its fused Rust update. */

import type { Tensor } from '../tensor.js';
import { Optimizer, type OptimizerOptions, type ParamGroup } from './optimizer.js';

/** Options of `optim.SGD`: momentum, dampening and Nesterov momentum, as in PyTorch. */
export interface SgdOptions extends OptimizerOptions {
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
}

/** Stochastic gradient descent, with optional (Nesterov) momentum, as PyTorch's SGD (lr 1e-3, no momentum by default). */
export class SGD extends Optimizer {
  constructor(params: Tensor[] | ParamGroup[], private readonly sgd: SgdOptions = {}) {
    super(params, sgd, 1e-3);
    if (sgd.nesterov && !(sgd.momentum! > 0)) throw new Error('sgd: nesterov needs momentum > 0');
  }
  get kind(): string { return 'sgd'; }
  protected slotCount(): number { return (this.sgd.momentum ?? 0) > 0 ? 1 : 0; }
  protected update(p: Tensor, g: Tensor, slots: Tensor[], lr: number, wd: number, clip: number, step: number): void {
    const options = { lr, momentum: this.sgd.momentum ?? 0, dampening: this.sgd.dampening ?? 0, nesterov: this.sgd.nesterov ?? false, firstStep: step === 1 };
    this.impl.sgdStep(p.handle, g.handle, slots.length ? slots[0].handle : -1, options, { scale: 1, clipValue: clip, weightDecay: wd });
  }
}

/** Options of `optim.Adam` and `optim.AdamW`: the moment decay rates and epsilon. */
export interface AdamOptions extends OptimizerOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
}

/** Adam (Kingma & Ba) with bias correction; weightDecay is an L2 term in the gradient. PyTorch's defaults: lr 1e-3, betas 0.9/0.999, eps 1e-8. */
export class Adam extends Optimizer {
  constructor(params: Tensor[] | ParamGroup[], protected readonly adam: AdamOptions = {}) {
    super(params, adam, 1e-3);
  }
  get kind(): string { return 'adam'; }
  protected slotCount(): number { return 2; }
  protected decoupled(): boolean { return false; }
  protected update(p: Tensor, g: Tensor, slots: Tensor[], lr: number, wd: number, clip: number, step: number): void {
    const [l2, decay] = this.decoupled() ? [0, wd] : [wd, 0];
    const options = { lr, beta1: this.adam.beta1 ?? 0.9, beta2: this.adam.beta2 ?? 0.999, eps: this.adam.eps ?? 1e-8, decoupledDecay: decay, step };
    this.impl.adamStep(p.handle, g.handle, slots[0].handle, slots[1].handle, options, { scale: 1, clipValue: clip, weightDecay: l2 });
  }
}

/** AdamW: Adam with decoupled weight decay (p ← p·(1 - lr·wd) before the Adam step); wd defaults to 0.01. */
export class AdamW extends Adam {
  constructor(params: Tensor[] | ParamGroup[], options: AdamOptions = {}) {
    super(params, { weightDecay: 0.01, ...options });
  }
  override get kind(): string { return 'adamw'; }
  protected override decoupled(): boolean { return true; }
}

/** Options of `optim.RMSProp`: the squared-gradient decay rate and epsilon. */
export interface RmsPropOptions extends OptimizerOptions {
  alpha?: number;
  eps?: number;
}

/** RMSProp: divides by a running RMS of the gradient (lr 1e-2, alpha 0.99, eps 1e-8, as PyTorch). */
export class RMSProp extends Optimizer {
  constructor(params: Tensor[] | ParamGroup[], private readonly rms: RmsPropOptions = {}) {
    super(params, rms, 1e-2);
  }
  get kind(): string { return 'rmsprop'; }
  protected slotCount(): number { return 1; }
  protected update(p: Tensor, g: Tensor, slots: Tensor[], lr: number, wd: number, clip: number, step: number): void {
    const options = { lr, alpha: this.rms.alpha ?? 0.99, eps: this.rms.eps ?? 1e-8 };
    this.impl.rmspropStep(p.handle, g.handle, slots[0].handle, options, { scale: 1, clipValue: clip, weightDecay: wd });
  }
}

/** AdaGrad: divides by the root of the summed squared gradients (lr 1e-2, eps 1e-10, as PyTorch). */
export class AdaGrad extends Optimizer {
  constructor(params: Tensor[] | ParamGroup[], private readonly ada: OptimizerOptions & { eps?: number } = {}) {
    super(params, ada, 1e-2);
  }
  get kind(): string { return 'adagrad'; }
  protected slotCount(): number { return 1; }
  protected update(p: Tensor, g: Tensor, slots: Tensor[], lr: number, wd: number, clip: number, step: number): void {
    this.impl.adagradStep(p.handle, g.handle, slots[0].handle, { lr, eps: this.ada.eps ?? 1e-10 }, { scale: 1, clipValue: clip, weightDecay: wd });
  }
}
