/** What the training loop needs from a model and from data. nn.Module satisfies TrainableModel. */

import type { Tensor } from '../tensor.js';

/** What `fit`, `evaluate` and `predict` need from a model; every `nn.Module` has it. */
export interface TrainableModel {
  /**
   * The model's forward pass. The default step calls `forward(x)` for a tensor or an object of
   * inputs and `forward(...x)` for an array of inputs (a GCN's `forward(features, graph)`); a
   * custom `trainStep` calls whatever it needs.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- models take and return any structure
  forward(...inputs: any[]): any;
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

/** A model's inputs: one tensor, several as an array (passed as separate arguments), or named ones in an object. */
export type Inputs = Tensor | Tensor[] | { [name: string]: Tensor };

/**
 * One batch for the default step: inputs `x` and targets `y` (also accepted as a tuple
 * `[x, y]`). Batches of any other structure of tensors go to a custom `trainStep`.
 */
export interface Batch {
  x: Inputs;
  y?: Tensor;
}

/**
 * An (async) iterable of batches; `length` (batches per epoch) drives the progress bar. An array
 * is the caller's and may be iterated for any number of epochs; the batches of any other iterable
 * (a DataLoader, a generator) are freed by the loop after their step.
 */
export type BatchSource<B = Batch> = (AsyncIterable<B> | Iterable<B>) & { length?: number };

/** Per-epoch numbers: loss, metrics, their val* twins, lr. */
export type Logs = Record<string, number>;
