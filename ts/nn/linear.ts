/**
 * Linear (fully connected) layer: y = x·Wᵀ + b.
 *
 * The weight is stored [outFeatures, inFeatures], PyTorch's layout, so PyTorch state dicts load
 * unchanged; the forward pass is one kiln.linear call, which reads it transposed in place (no copy)
 * and starts its GEMM from the bias.
 */

import type { Tensor } from '../tensor.js';
import { linear } from '../ops/linear.js';
import { deriveSeed, fanInUniform, type Initializer, type InitializerName } from './init.js';
import { layerArgs } from './layer-args.js';
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
    const args = layerArgs('Linear');
    args.positiveInt('inFeatures', inFeatures);
    args.positiveInt('outFeatures', outFeatures);
    const o = args.options(options);
    const init = args.init('init', o.init, fanInUniform);
    const biasInit = args.init('biasInit', o.biasInit, fanInUniform);
    const bias = args.flag('bias', o.bias, true);
    const seed = args.seed(o.seed);
    [this.weight, this.bias] = args.build(() => [
      this.registerParameter(init([outFeatures, inFeatures], { seed: deriveSeed(seed, 0) })),
      bias ? this.registerParameter(biasInit([outFeatures], { seed: deriveSeed(seed, 1), fanIn: inFeatures, fanOut: outFeatures })) : null,
    ]);
  }

  /** [..., inFeatures] -> [..., outFeatures] (also [inFeatures] -> [outFeatures]). */
  forward(x: Tensor): Tensor {
    const shape = x.shape;
    if (shape.length === 0 || shape[shape.length - 1] !== this.inFeatures) {
      throw new Error(`Linear(${this.inFeatures} -> ${this.outFeatures}): expected input [..., ${this.inFeatures}], got ${x.dtype} [${shape.join(', ')}]`);
    }
    // One call: the GEMM starts from the bias, over every leading dim at once.
    return linear(x, this.weight, this.bias);
  }
}
