/** Containers: Sequential (a chain of modules) and Residual (x + f(x)). */

import type { Tensor } from '../tensor.js';
import { Module, type AnyModule } from './module.js';

export class Sequential extends Module {
  readonly layers: Module[];

  /** The modules to run in order; each must accept the previous one's output. */
  constructor(...layers: Module[]) {
    super();
    layers.forEach((m, i) => {
      if (!(m instanceof Module)) throw new Error(`Sequential: argument ${i} is not a Module (got ${m === null ? 'null' : typeof m})`);
    });
    this.layers = layers;
  }

  /** Children are named by index ('0', '1', ...), as in PyTorch, so state dict keys read '0.weight'. */
  override namedChildren(): Array<[string, AnyModule]> {
    return this.layers.map((m, i) => [String(i), m]);
  }

  /** Appends a module. Returns this. */
  append(m: Module): this {
    if (!(m instanceof Module)) throw new Error('Sequential.append: expected a Module');
    this.layers.push(m);
    return this;
  }

  /** Number of layers. */
  get length(): number {
    return this.layers.length;
  }

  /** Each layer's output is the next one's input. x -> the last layer's output shape */
  forward(x: Tensor): Tensor {
    for (const layer of this.layers) x = layer.forward(x);
    return x;
  }
}

export class Residual extends Module {
  /** body: a module whose output has the input's shape. */
  constructor(readonly body: Module) {
    super();
    if (!(body instanceof Module)) throw new Error('Residual: expected a Module');
  }

  /** x + body(x); body must keep the shape (or broadcast against x). [...] -> [...] */
  forward(x: Tensor): Tensor {
    return x.add(this.body.forward(x));
  }
}
