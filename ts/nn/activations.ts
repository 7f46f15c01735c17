/**
 * Activation modules: stateless wrappers over the elementwise ops, so activations can sit in a
 * Sequential. All: any shape -> same shape (Softmax/LogSoftmax normalize along `axis`).
 */

import type { Tensor } from '../tensor.js';
import * as ops from '../ops/elementwise.js';
import { logSoftmax, softmax } from '../ops/reduce.js';
import { Module } from './module.js';

export class ReLU extends Module {
  /** max(x, 0). [...] -> [...] */
  forward(x: Tensor): Tensor {
    return ops.relu(x);
  }
}

export class LeakyReLU extends Module {
  /** alpha: slope for x < 0 (default 0.01, as PyTorch). */
  constructor(readonly alpha = 0.01) {
    super();
  }
  /** x > 0 ? x : alpha·x. [...] -> [...] */
  forward(x: Tensor): Tensor {
    return ops.leakyRelu(x, this.alpha);
  }
}

export class ELU extends Module {
  /** alpha: the negative saturation value (default 1). */
  constructor(readonly alpha = 1) {
    super();
  }
  /** x > 0 ? x : alpha·(eˣ − 1). [...] -> [...] */
  forward(x: Tensor): Tensor {
    return ops.elu(x, this.alpha);
  }
}

export class GELU extends Module {
  /** approximate: 'none' (exact erf form, default) or 'tanh' (the GPT-2 approximation), as PyTorch. */
  constructor(readonly approximate: 'none' | 'tanh' = 'none') {
    super();
    if (approximate !== 'none' && approximate !== 'tanh') throw new Error(`GELU: approximate must be 'none' or 'tanh', got '${String(approximate)}'`);
  }
  /** x·Φ(x). [...] -> [...] */
  forward(x: Tensor): Tensor {
    if (this.approximate === 'none') return ops.gelu(x);
    // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), composed: Kiln has no fused tanh-GELU kernel.
    const inner = x.add(x.mul(x).mul(x).mul(0.044715)).mul(Math.sqrt(2 / Math.PI));
    return x.mul(0.5).mul(inner.tanh().add(1));
  }
}

export class Sigmoid extends Module {
  /** 1 / (1 + e⁻ˣ). [...] -> [...] */
  forward(x: Tensor): Tensor {
    return ops.sigmoid(x);
  }
}

export class Tanh extends Module {
  /** tanh x. [...] -> [...] */
  forward(x: Tensor): Tensor {
    return ops.tanh(x);
  }
}

export class Mish extends Module {
  /** x·tanh(softplus(x)), fused (PyTorch's nn.Mish). [...] -> [...] */
  forward(x: Tensor): Tensor {
    return ops.mish(x);
  }
}

export class Softplus extends Module {
  /** beta sharpens the curve: softplus(beta·x) / beta (default 1). */
  constructor(readonly beta = 1) {
    super();
    if (!(beta > 0)) throw new Error(`Softplus: beta must be > 0, got ${beta}`);
  }
  /** log(1 + e^(beta·x)) / beta. [...] -> [...] */
  forward(x: Tensor): Tensor {
    return this.beta === 1 ? ops.softplus(x) : ops.softplus(x.mul(this.beta)).div(this.beta);
  }
}

export class Softmax extends Module {
  /** axis: the dim that sums to 1 (default last). */
  constructor(readonly axis = -1) {
    super();
  }
  /** e^x / Σ e^x along axis. [...] -> [...] */
  forward(x: Tensor): Tensor {
    return softmax(x, this.axis);
  }
}

export class LogSoftmax extends Module {
  /** axis: the dim to normalize over (default last). */
  constructor(readonly axis = -1) {
    super();
  }
  /** x − logΣe^x along axis. [...] -> [...] */
  forward(x: Tensor): Tensor {
    return logSoftmax(x, this.axis);
  }
}
