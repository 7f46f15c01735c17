/**
 * Position information for attention models, which are otherwise blind to order: a fixed
 * sinusoidal encoding (Vaswani et al.) or a learned table of position vectors (GPT, BERT). Both add
 * to their input: [batch, seq, dModel] -> [batch, seq, dModel].
 */

import type { Tensor } from '../tensor.js';
import { tidy } from '../engine.js';
import { arange } from '../ops/creation.js';
import { stack } from '../ops/shape.js';
import type { JsonObject } from '../io/json.js';
import { Embedding } from './embedding.js';
import { deriveSeed, normal, type Initializer } from './init.js';
import { layerArgs } from './layer-args.js';
import { Module } from './module.js';

function checkInput(name: string, x: Tensor, dModel: number, offset: number): void {
  if (x.rank !== 3 || x.shape[2] !== dModel) throw new Error(`${name}: expected input [batch, seq, ${dModel}], got ${x.dtype} [${x.shape.join(', ')}]`);
  if (!Number.isInteger(offset) || offset < 0) throw new Error(`${name}: offset must be a non-negative integer, got ${offset}`);
}

export class SinusoidalPositionalEncoding extends Module<[Tensor, number?]> {
  /** Adds sin/cos waves of geometric wavelengths: even features sin(p·ω_i), odd ones cos(p·ω_i), ω_i = 10000^(−2i/dModel). */
  constructor(readonly dModel: number) {
    super();
    layerArgs('SinusoidalPositionalEncoding').positiveInt('dModel', dModel);
  }

  /**
   * The encoding of positions offset .. offset + length − 1: [length, dModel]. Computed by a few
   * ops on each call rather than stored: nothing to save, no maximum length.
   */
  table(length: number, offset = 0): Tensor {
    return tidy(() => {
      const half = Math.ceil(this.dModel / 2);
      const frequencies = arange(0, half).mul((-2 * Math.log(10000)) / this.dModel).exp();
      const angles = arange(offset, offset + length).reshape([length, 1]).mul(frequencies);
      const interleaved = stack([angles.sin(), angles.cos()], 2).reshape([length, 2 * half]);
      return this.dModel % 2 === 0 ? interleaved : interleaved.slice([0, 0], [length, this.dModel]);
    });
  }

  /** x + encoding of positions offset.. (offset: where this chunk starts, for generation). [B, T, dModel] -> same */
  forward(x: Tensor, offset = 0): Tensor {
    checkInput('SinusoidalPositionalEncoding', x, this.dModel, offset);
    return tidy(() => x.add(this.table(x.shape[1], offset)));
  }

  /** The constructor arguments, as JSON for a saved model's config. */
  config(): JsonObject {
    return { dModel: this.dModel };
  }

  /** Rebuilds the module from `config()`. */
  static fromConfig(c: JsonObject): SinusoidalPositionalEncoding {
    return new SinusoidalPositionalEncoding(c.dModel as number);
  }
}

/** Options of `nn.LearnedPositionalEmbedding`. */
export interface LearnedPositionalEmbeddingOptions {
  /** Initializer of the table (default N(0, 0.02²), as GPT-2 and BERT). */
  init?: Initializer;
  seed?: number;
}

const smallNormal: Initializer = (shape, options = {}) => normal(shape, { ...options, gain: 0.02 });

export class LearnedPositionalEmbedding extends Module<[Tensor, number?]> {
  /** One learned vector per position: weight [maxLength, dModel]. */
  readonly embedding: Embedding;

  /** Positions 0 .. maxLength − 1 of dModel features. */
  constructor(readonly maxLength: number, readonly dModel: number, options: LearnedPositionalEmbeddingOptions = {}) {
    super();
    const args = layerArgs('LearnedPositionalEmbedding');
    args.positiveInt('maxLength', maxLength);
    args.positiveInt('dModel', dModel);
    const o = args.options(options);
    const init = args.init('init', o.init, smallNormal);
    const seed = args.seed(o.seed);
    this.embedding = args.build(() => new Embedding(maxLength, dModel, { init, seed: deriveSeed(seed, 0) }));
  }

  /** x + the vectors of positions offset .. offset + T − 1 (at most maxLength). [B, T, dModel] -> same */
  forward(x: Tensor, offset = 0): Tensor {
    const name = `LearnedPositionalEmbedding(${this.maxLength}, ${this.dModel})`;
    checkInput(name, x, this.dModel, offset);
    const length = x.shape[1];
    if (offset + length > this.maxLength) {
      throw new Error(`${name}: positions ${offset}..${offset + length - 1} exceed the table (maxLength ${this.maxLength})`);
    }
    return tidy(() => x.add(this.embedding.forward(arange(offset, offset + length, 1, 'int32'))));
  }

  /** The constructor arguments, as JSON for a saved model's config. */
  config(): JsonObject {
    return { maxLength: this.maxLength, dModel: this.dModel };
  }

  /** Rebuilds the module from `config()` (fresh weights; load the saved ones after). */
  static fromConfig(c: JsonObject): LearnedPositionalEmbedding {
    return new LearnedPositionalEmbedding(c.maxLength as number, c.dModel as number);
  }
}
