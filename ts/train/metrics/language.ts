/**
 * Language-model metrics from next-token logits [..., vocab] and int32 targets [...]: both are
 * the mean cross-entropy per token, in other units. Perplexity is e^(nats per token); bits per
 * character is nats per token / ln 2 (for a character-level model, one token is one character).
 */

import type { Tensor } from '../../tensor.js';
import { crossEntropy } from '../../losses.js';
import { detach } from '../../autograd.js';
import { checkClassScores, MeanMetric } from './metric.js';

/** Perplexity ('perplexity') or bits per character ('bitsPerChar') over every token of the epoch. */
export class TokenCrossEntropy extends MeanMetric {
  readonly name: string;

  constructor(readonly unit: 'perplexity' | 'bitsPerChar') {
    super();
    if (unit !== 'perplexity' && unit !== 'bitsPerChar') throw new Error(`TokenCrossEntropy: unit must be 'perplexity' or 'bitsPerChar', got '${String(unit)}'`);
    this.name = unit;
  }

  protected batchSum(outputs: Tensor, targets: Tensor): Tensor {
    checkClassScores(this.name, outputs, targets);
    return crossEntropy(detach(outputs), targets, { reduction: 'sum' });
  }

  /** From nats per token. */
  protected override finish(perToken: number): number {
    return this.unit === 'perplexity' ? Math.exp(perToken) : perToken / Math.LN2;
  }
}
