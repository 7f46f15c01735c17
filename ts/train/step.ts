/**
 * Steps: what the loop runs on each batch. The default step is Keras's (loss(model(x), y)); a
 * custom `trainStep(batch, ctx)` is Lightning's, for objectives that are not a loss of a
 * prediction and a label (a VAE's ELBO, a GAN's two players, contrastive pairs).
 */

import type { Optimizer } from '../optim/optimizer.js';
import type { Tensor } from '../tensor.js';
import { describeValue, isTensor } from './batches.js';
import type { Inputs, TrainableModel } from './types.js';

/**
 * The loss of one batch for the default step. `inputs` is the batch's input, for losses that
 * need more than the model's output (distillation runs the teacher on it).
 */
export type LossFn = (outputs: Tensor, targets: Tensor, inputs: Inputs) => Tensor;

/** What a step receives besides its batch. */
export interface StepContext {
  model: TrainableModel;
  /** The first (or only) optimizer. */
  optimizer: Optimizer;
  /** Every optimizer given to fit (a GAN's generator and discriminator optimizers). */
  optimizers: Optimizer[];
  /** 1-based. */
  epoch: number;
  /** The batch within the epoch, 1-based. */
  batch: number;
  /** Training batches since this fit began, this one included (0 during evaluation). */
  globalStep: number;
  /** False when the step runs for validation or evaluation (no gradients are recorded then). */
  training: boolean;
  /**
   * Logs an extra scalar (a number or a tensor []): it appears in the batch callbacks' logs and,
   * averaged over the epoch's batches, in the epoch logs (`valName` during validation).
   */
  log(name: string, value: number | Tensor): void;
  /**
   * For `manualOptimization`: updates `optimizer`'s parameters, keeping the update only if every
   * gradient was finite. The check runs on the device and is read with the step's loss (no read
   * inside the step, so it works on WebGPU in a page): a spoiled update is undone there, and fit
   * then skips the batch (`onNonFiniteGradients: 'skip'`, counted in `skippedSteps`) or stops
   * after the step, naming the parameters ('stop').
   */
  optimizerStep(optimizer?: Optimizer): void;
}

/** What a step returns: the loss, and optionally outputs and targets for the metrics. */
export interface StepResult {
  /** A float32 scalar []. */
  loss: Tensor;
  outputs?: Tensor;
  targets?: Tensor;
}

/**
 * A custom step: computes and returns the batch's loss (or { loss, outputs, targets } for the
 * metrics). With automatic optimization fit then runs backward, the gradient guard and the
 * optimizer step; with `manualOptimization` the step calls `loss.backward()` and
 * `ctx.optimizerStep(opt)` itself and returns the loss for the logs.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a step takes whatever structure its data yields
export type TrainStep<B = any> = (batch: B, ctx: StepContext) => Tensor | StepResult;

/** The step's result in one form, the loss checked to be a float32 scalar. `op` names the caller. */
export function stepResult(op: string, result: unknown): StepResult {
  const r = isTensor(result) ? { loss: result } : (result as StepResult | null);
  if (r === null || typeof r !== 'object' || !isTensor(r.loss)) {
    throw new Error(`${op}: the step must return the loss (a tensor []) or { loss, outputs?, targets? }, got ${describeValue(result)}`);
  }
  if (r.loss.shape.length !== 0 || r.loss.dtype !== 'float32') {
    throw new Error(`${op}: the loss must be a float32 scalar [] (reduce it with mean or sum), got ${describeValue(r.loss)}`);
  }
  return r;
}

/** Calls the model on a batch's inputs: forward(x) for a tensor or an object, forward(...x) for an array. */
export function callModel(model: TrainableModel, x: Inputs): unknown {
  return Array.isArray(x) ? model.forward(...x) : model.forward(x);
}

/** A batch's inputs and targets: `{ x, y }` or `[x, y]`. */
export function splitBatch(op: string, batch: unknown): { x: Inputs; y: Tensor | undefined } {
  if (Array.isArray(batch) && batch.length === 2) return { x: batch[0] as Inputs, y: batch[1] as Tensor };
  if (typeof batch === 'object' && batch !== null && 'x' in batch) return batch as { x: Inputs; y: Tensor | undefined };
  throw new Error(
    `${op}: without a trainStep a batch must be { x, y } or [x, y], got ${describeValue(batch)}; ` +
      'pass trainStep: (batch, ctx) => loss for batches of another form',
  );
}

/** The default step: loss(model(x), y). `op` names the caller in errors. */
export function defaultStep(op: string, lossFn: LossFn): TrainStep {
  return (batch, ctx) => {
    const { x, y } = splitBatch(op, batch);
    if (!isTensor(y)) throw new Error(`${op}: the batch has no targets y (got ${describeValue(y)}); unsupervised training needs a trainStep`);
    const outputs = callModel(ctx.model, x);
    if (!isTensor(outputs)) {
      throw new Error(`${op}: the model returned ${describeValue(outputs)}, and the default step needs one tensor to pass to the loss; use a trainStep for models with other outputs`);
    }
    return { loss: lossFn(outputs, y, x), outputs, targets: y };
  };
}
