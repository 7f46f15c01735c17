/** What the training loop needs from a model and from data. nn.Module satisfies TrainableModel. */

import type { Tensor } from '../tensor.js';

/** What `fit`, `evaluate` and `predict` need from a model; every `nn.Module` has it. */
export interface TrainableModel {
  /** The model's output for a batch: [batch, ...] -> [batch, ...]. */
  forward(x: Tensor): Tensor;
  /** The trainable tensors, in a fixed order. */
  parameters(): Tensor[];
  /** Switches to training mode (dropout on, batch norm on batch statistics). */
  train(): unknown;
  /** Switches to evaluation mode. */
  eval(): unknown;
  /** Parameters and buffers by name. */
  stateDict(): Record<string, Tensor>;
  /** Copies the values of `state` into the model's tensors. */
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
