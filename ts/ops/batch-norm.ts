/**
 * Batch normalization as one fused Rust kernel (crates/kiln-core/src/ops/batch_norm.rs):
 * statistics, normalization, scale and shift, the running-statistics update in place, and the
 * backward pass. nn.BatchNorm1d and nn.BatchNorm2d are built on it.
 */

import { backend } from '../engine.js';
import { wrap, type Tensor } from '../tensor.js';
import { handleOf, optionalHandleOf } from './util.js';

/** The per-channel tensors of `batchNorm`: scale, shift and the running statistics. */
export interface BatchNormInputs {
  /** Per-channel scale γ [channels] (none: 1). */
  weight?: Tensor | null;
  /** Per-channel shift β [channels] (none: 0). */
  bias?: Tensor | null;
  /** Running mean [channels]: updated in place when training; used instead of the batch's when not. */
  runningMean?: Tensor | null;
  /** Running variance [channels] (unbiased), given together with runningMean. */
  runningVar?: Tensor | null;
  /** Normalize with the batch's statistics and update the running ones (default true). */
  training?: boolean;
  /** running ← (1 − momentum)·running + momentum·batch (default 0.1). */
  momentum?: number;
  /** Added to the variance before the square root (default 1e-5). */
  eps?: number;
}

/**
 * y = (x − μ)/√(σ² + eps)·weight + bias per channel (axis 1), with PyTorch's semantics: in
 * training μ and σ² (biased) are the batch's over every axis but 1, and the running statistics
 * (if given) move toward them, the variance unbiased; otherwise the running statistics are used
 * (the batch's when there are none). x: [batch, channels, ...] float32 -> same shape.
 */
export function batchNorm(x: Tensor, inputs: BatchNormInputs = {}): Tensor {
  const op = 'batchNorm';
  const b = backend();
  const optional = (t: Tensor | null | undefined, arg: string): number => optionalHandleOf(t, op, b, arg);
  const { training = true, momentum = 0.1, eps = 1e-5 } = inputs;
  if (typeof training !== 'boolean') throw new Error(`${op}: training must be a boolean, got ${JSON.stringify(training)}`);
  return wrap(
    b.impl.batchNorm(
      handleOf(x, op, b),
      optional(inputs.weight, 'weight'),
      optional(inputs.bias, 'bias'),
      optional(inputs.runningMean, 'runningMean'),
      optional(inputs.runningVar, 'runningVar'),
      training,
      momentum,
      eps,
    ),
    b,
  );
}
