/** Embedding: a lookup table of learned vectors, one row per id (a gather along axis 0). */

import type { Tensor } from '../tensor.js';
import { gather } from '../ops/shape.js';
import { deriveSeed, normal, type Initializer, type InitializerName } from './init.js';
import { layerArgs } from './layer-args.js';
import { Module } from './module.js';

/** Options of `nn.Embedding`. */
export interface EmbeddingOptions {
  /** Initializer of the table (default normal: N(0, 1), as PyTorch). */
  init?: InitializerName | Initializer;
  seed?: number;
}

export class Embedding extends Module {
  /** [numEmbeddings, embeddingDim] */
  readonly weight: Tensor;

  /** A table of numEmbeddings vectors of size embeddingDim. */
  constructor(readonly numEmbeddings: number, readonly embeddingDim: number, options: EmbeddingOptions = {}) {
    super();
    const args = layerArgs('Embedding');
    args.positiveInt('numEmbeddings', numEmbeddings);
    args.positiveInt('embeddingDim', embeddingDim);
    const o = args.options(options);
    const init = args.init('init', o.init, normal);
    const seed = args.seed(o.seed);
    this.weight = args.build(() => this.registerParameter(init([numEmbeddings, embeddingDim], { seed: deriveSeed(seed, 0) })));
  }

  /**
   * ids: int32 [...] with values in [0, numEmbeddings) -> float32 [..., embeddingDim]. Out-of-range
   * ids and non-int32 ids are reported by gather. The gradient scatters back into the used rows.
   */
  forward(ids: Tensor): Tensor {
    return gather(this.weight, ids, 0);
  }
}
