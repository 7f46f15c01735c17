/** Embedding: a lookup table of learned vectors, one row per id (a gather along axis 0). */

import type { Tensor } from '../tensor.js';
import { gather } from '../ops/shape.js';
import { deriveSeed, normal, resolveInit, type Initializer, type InitializerName } from './init.js';
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
    for (const [what, n] of [['numEmbeddings', numEmbeddings], ['embeddingDim', embeddingDim]] as const) {
      if (!Number.isInteger(n) || n < 1) throw new Error(`Embedding: ${what} must be a positive integer, got ${n}`);
    }
    const init = resolveInit(options.init ?? normal, 'Embedding');
    this.weight = this.registerParameter(init([numEmbeddings, embeddingDim], { seed: deriveSeed(options.seed, 0) }));
  }

  /**
   * ids: int32 [...] with values in [0, numEmbeddings) -> float32 [..., embeddingDim]. Out-of-range
   * ids and non-int32 ids are reported by gather. The gradient scatters back into the used rows.
   */
  forward(ids: Tensor): Tensor {
    return gather(this.weight, ids, 0);
  }
}
