/** What the training loop needs from a model and from data. nn.Module satisfies TrainableModel. */

import type { Tensor } from '../tensor.js';

export interface TrainableModel {
  forward(x: Tensor): Tensor;
  parameters(): Tensor[];
  train(): unknown;
  eval(): unknown;
  stateDict(): Record<string, Tensor>;
  loadStateDict(state: Record<string, Tensor>): unknown;
}

/** One batch. The loop disposes x and y after using them. */
export interface Batch {
  x: Tensor;
  y: Tensor;
}

/** A DataLoader or any (async) iterable of batches; `length` (batches per epoch) drives the progress bar. */
export type BatchSource = (AsyncIterable<Batch> | Iterable<Batch>) & { length?: number };

/** Per-epoch numbers: loss, metrics, their val* twins, lr. */
export type Logs = Record<string, number>;
