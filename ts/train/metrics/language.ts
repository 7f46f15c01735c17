/**
 * Language-model metrics from next-token logits [..., vocab] and int32 targets [...]: both are
 * the mean cross-entropy per token, in other units. Perplexity is e^(nats per token); bits per
 * character is nats per token / ln 2 (for a character-level model, one token is one character).
 */

import type { Tensor } from '../../tensor.js';
import { crossEntropy } from '../../losses.js';
import { detach } from '../../autograd.js';
import { checkClassScores, RunningSum, type Metric } from './metric.js';

/** Perplexity ('perplexity') or bits per character ('bitsPerChar') over every token of the epoch. */
export class TokenCrossEntropy implements Metric {
  readonly name: string;
  private readonly nats = new RunningSum();
  private tokens = 0;

  constructor(readonly unit: 'perplexity' | 'bitsPerChar') {
    if (unit !== 'perplexity' && unit !== 'bitsPerChar') throw new Error(`TokenCrossEntropy: unit must be 'perplexity' or 'bitsPerChar', got '${String(unit)}'`);
    this.name = unit;
  }

  update(outputs: Tensor, targets: Tensor): void {
    checkClassScores(this.name, outputs, targets);
    this.tokens += targets.size;
    this.nats.add(() => crossEntropy(detach(outputs), targets, { reduction: 'sum' }));
  }

  compute(): number {
    const perToken = (this.nats.read()?.[0] ?? NaN) / this.tokens;
    return this.unit === 'perplexity' ? Math.exp(perToken) : perToken / Math.LN2;
  }

  reset(): void {
    this.nats.reset();
    this.tokens = 0;
  }
}
