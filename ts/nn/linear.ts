/**
 * Linear (fully connected) layer: y = x·Wᵀ + b.
 *
 * The weight is stored [outFeatures, inFeatures], PyTorch's layout, so PyTorch state dicts load
 * unchanged; the forward pass reads it transposed through matmul's transposeB flag (no copy).
 */

import type { Tensor } from '../tensor.js';
import { matmul } from '../ops/matmul.js';
import { deriveSeed, fanInUniform, resolveInit, type Initializer, type InitializerName } from './init.js';
import { Module } from './module.js';

/** Options of `nn.Linear`: bias, initializer and seed. */
export interface LinearOptions {
  /** Learn an additive bias (default true). */
  bias?: boolean;
  /** Weight initializer (default fanInUniform: U(±1/√inFeatures), PyTorch's default). */
  init?: InitializerName | Initializer;
  /** Bias initializer (default fanInUniform with the weight's fanIn, as PyTorch). */
  biasInit?: InitializerName | Initializer;
  /** Seeds the weight and bias initializers (derived seeds, so they differ). */
  seed?: number;
}

export class Linear extends Module {
  /** [outFeatures, inFeatures] */
  readonly weight: Tensor;
  /** [outFeatures], or null without bias. */
  readonly bias: Tensor | null;

  /** A layer mapping [..., inFeatures] to [..., outFeatures]. */
  constructor(readonly inFeatures: number, readonly outFeatures: number, options: LinearOptions = {}) {
    super();
    for (const [what, n] of [['inFeatures', inFeatures], ['outFeatures', outFeatures]] as const) {
      if (!Number.isInteger(n) || n < 1) throw new Error(`Linear: ${what} must be a positive integer, got ${n}`);
    }
    const init = resolveInit(options.init ?? fanInUniform, 'Linear');
    const biasInit = resolveInit(options.biasInit ?? fanInUniform, 'Linear');
    this.weight = this.registerParameter(init([outFeatures, inFeatures], { seed: deriveSeed(options.seed, 0) }));
    this.bias = (options.bias ?? true)
      ? this.registerParameter(biasInit([outFeatures], { seed: deriveSeed(options.seed, 1), fanIn: inFeatures, fanOut: outFeatures }))
      : null;
  }

  /** [..., inFeatures] -> [..., outFeatures] (also [inFeatures] -> [outFeatures]). */
  forward(x: Tensor): Tensor {
    const shape = x.shape;
    if (shape.length === 0 || shape[shape.length - 1] !== this.inFeatures) {
      throw new Error(`Linear(${this.inFeatures} -> ${this.outFeatures}): expected input [..., ${this.inFeatures}], got ${x.dtype} [${shape.join(', ')}]`);
    }
    // Rank > 2 folds the leading dims into one (a view) so the 2-D kernel runs once, not per batch.
    const flat = shape.length > 2 ? x.reshape([-1, this.inFeatures]) : x;
    let y = matmul(flat, this.weight, false, true);
    if (this.bias !== null) y = y.add(this.bias);
    return shape.length > 2 ? y.reshape([...shape.slice(0, -1), this.outFeatures]) : y;
  }
}
