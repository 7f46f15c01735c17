/**
 * Losses. Cross-entropy is one fused Rust kernel (log-softmax, loss and gradient together); the
 * others are short compositions of ops whose gradients come from autograd.
 */

import { backend } from './engine.js';
import { wrap, type Tensor } from './tensor.js';
import { handleOf } from './ops/util.js';
import { tidy } from './engine.js';
import * as k from './ops/elementwise.js';
import { mean, sum, softmax, logSoftmax } from './ops/reduce.js';
import { detach } from './autograd.js';
import { asCalled } from './named-errors.js';

/** How a loss combines the per-example values: 'mean' (default), 'sum', or 'none' (one value per example). */
export type Reduction = 'none' | 'mean' | 'sum';

const REDUCTION_CODE: Record<Reduction, number> = { none: 0, mean: 1, sum: 2 };

function reduce(loss: Tensor, reduction: Reduction, op: string): Tensor {
  switch (reduction) {
    case 'none':
      return loss;
    case 'mean':
      return mean(loss);
    case 'sum':
      return sum(loss);
    default:
      throw new Error(`${op}: reduction must be 'none', 'mean' or 'sum', got '${String(reduction)}'`);
  }
}

/** Options of `crossEntropy`: class weights, label smoothing and the reduction. */
export interface CrossEntropyOptions {
  /** Per-class weights [classes]; 'mean' then divides by the summed weights of the targets (as PyTorch). */
  weights?: Tensor;
  /** Mixes the one-hot target with the uniform distribution: (1 - ε) onehot + ε / classes. */
  labelSmoothing?: number;
  /** How the per-example losses combine (default 'mean'). */
  reduction?: Reduction;
}

/**
 * Cross-entropy from logits. logits: [..., classes] float32, targets: [...] int32 class indices
 * (the same leading shape: [batch, classes] with [batch], or a sequence model's
 * [batch, time, classes] with [batch, time]) -> [] (mean/sum over every position) or [...]
 * (none).
 */
export function crossEntropy(logits: Tensor, targets: Tensor, options: CrossEntropyOptions = {}): Tensor {
  const b = backend();
  const reduction = options.reduction ?? 'mean';
  const code = REDUCTION_CODE[reduction];
  if (code === undefined) throw new Error(`crossEntropy: reduction must be 'none', 'mean' or 'sum', got '${String(reduction)}'`);
  const weights = options.weights === undefined ? -1 : handleOf(options.weights, 'crossEntropy', b, 'weights');
  const call = (l: Tensor, t: Tensor) =>
    wrap(b.impl.crossEntropy(handleOf(l, 'crossEntropy', b, 'logits'), handleOf(t, 'crossEntropy', b, 'targets'), weights, options.labelSmoothing ?? 0, code), b);
  handleOf(logits, 'crossEntropy', b, 'logits');
  handleOf(targets, 'crossEntropy', b, 'targets');
  if (logits.shape.length <= 2) return call(logits, targets);
  // More leading axes: every position is one example of the fused [rows, classes] kernel.
  const lead = logits.shape.slice(0, -1);
  if (targets.shape.length !== lead.length || lead.some((d, i) => d !== targets.shape[i])) {
    throw new Error(
      `crossEntropy: logits ${logits.dtype} [${logits.shape.join(', ')}] need targets of shape [${lead.join(', ')}] (one class index per position), got ${targets.dtype} [${targets.shape.join(', ')}]`,
    );
  }
  const classes = logits.shape[logits.shape.length - 1];
  return tidy(() => {
    const loss = call(logits.reshape([-1, classes]), targets.reshape([-1]));
    return reduction === 'none' ? loss.reshape(lead) : loss;
  });
}

function checkSameShape(op: string, a: Tensor, b: Tensor): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(`${op}: predictions [${a.shape.join(', ')}] and targets [${b.shape.join(', ')}] must have the same shape`);
  }
}

/**
 * Binary cross-entropy from logits, stable for any logit: softplus(x) - x·y.
 * logits and targets (in [0, 1]) of the same shape -> [] or that shape.
 */
export function binaryCrossEntropy(logits: Tensor, targets: Tensor, options: { reduction?: Reduction } = {}): Tensor {
  return asCalled('binaryCrossEntropy', 'function', () => {
    checkSameShape('binaryCrossEntropy', logits, targets);
    return tidy(() => reduce(k.sub(k.softplus(logits), k.mul(logits, targets)), options.reduction ?? 'mean', 'binaryCrossEntropy'));
  });
}

/** Mean squared error. predictions and targets of one shape -> [] or that shape. */
export function mse(predictions: Tensor, targets: Tensor, options: { reduction?: Reduction } = {}): Tensor {
  return asCalled('mse', 'function', () => {
    checkSameShape('mse', predictions, targets);
    return tidy(() => reduce(k.square(k.sub(predictions, targets)), options.reduction ?? 'mean', 'mse'));
  });
}

/**
 * Huber loss: ½d² where |d| <= delta, delta·(|d| - ½delta) beyond (PyTorch's HuberLoss).
 * predictions and targets of one shape -> [] or that shape.
 */
export function huber(predictions: Tensor, targets: Tensor, options: { delta?: number; reduction?: Reduction } = {}): Tensor {
  return asCalled('huber', 'function', () => {
    checkSameShape('huber', predictions, targets);
    const delta = options.delta ?? 1;
    if (!(delta > 0)) throw new Error(`huber: delta must be > 0, got ${delta}`);
    return tidy(() => {
      const d = k.abs(k.sub(predictions, targets));
      const quadratic = k.mul(k.square(d), 0.5);
      const linear = k.mul(k.sub(d, 0.5 * delta), delta);
      return reduce(k.where(k.lessEqual(d, delta), quadratic, linear), options.reduction ?? 'mean', 'huber');
    });
  });
}

/**
 * KL divergence KL(p || q) = sum p (log p - log q), with q given as log-probabilities (as
 * PyTorch's kl_div) and p as probabilities; terms with p = 0 contribute 0.
 * 'batchmean' divides the sum by the batch size (the mathematically correct mean for a batch).
 */
export function klDivergence(logQ: Tensor, p: Tensor, options: { reduction?: Reduction | 'batchmean' } = {}): Tensor {
  return asCalled('klDivergence', 'function', () => {
    checkSameShape('klDivergence', logQ, p);
    const reduction = options.reduction ?? 'batchmean';
    return tidy(() => {
      const positive = k.greater(p, 0);
      const logP = k.where(positive, k.log(k.maximum(p, 1e-38)), 0);
      const terms = k.where(positive, k.mul(p, k.sub(logP, logQ)), 0);
      if (reduction === 'batchmean') return k.div(sum(terms), logQ.shape[0] ?? 1);
      return reduce(terms, reduction, 'klDivergence');
    });
  });
}

/**
 * KL(N(mu, exp(logVar)) || N(0, 1)) summed over the last dim and averaged over the batch, the
 * VAE regularizer. mu, logVar: [batch, latent] -> []
 */
export function gaussianKl(mu: Tensor, logVar: Tensor): Tensor {
  return asCalled('gaussianKl', 'function', () => {
    checkSameShape('gaussianKl', mu, logVar);
    return tidy(() => {
      const terms = k.sub(k.sub(k.add(logVar, 1), k.square(mu)), k.exp(logVar));
      return k.div(k.mul(sum(terms), -0.5), mu.shape[0] ?? 1);
    });
  });
}

/** Options of `distillationLoss` (Hinton et al. 2015): temperature and the soft/hard mix. */
export interface DistillationOptions {
  /** Softens both distributions: softmax(logits / T). Hinton et al. use 2-20; default 4. */
  temperature?: number;
  /** Weight of the soft (teacher) term; 1 - alpha weighs the hard-label cross-entropy. Default 0.9. */
  alpha?: number;
}

/**
 * Knowledge distillation (Hinton, Vinyals & Dean 2015):
 *   alpha · T² · KL(softmax(teacher / T) || softmax(student / T))  +  (1 - alpha) · CE(student, targets)
 * The T² keeps the soft term's gradients on the scale of the hard term's as T changes. The KL is
 * averaged over the batch; the teacher's logits are detached (no gradient reaches the teacher).
 * studentLogits, teacherLogits: [batch, classes]; targets: [batch] int32 -> [].
 */
export function distillationLoss(studentLogits: Tensor, teacherLogits: Tensor, targets: Tensor, options: DistillationOptions = {}): Tensor {
  return asCalled('distillationLoss', 'function', () => {
    const op = 'distillationLoss';
    const temperature = options.temperature ?? 4;
    const alpha = options.alpha ?? 0.9;
    if (!(temperature > 0) || !Number.isFinite(temperature)) throw new Error(`${op}: temperature must be a positive number, got ${temperature}`);
    if (!(alpha >= 0 && alpha <= 1)) throw new Error(`${op}: alpha must be in [0, 1], got ${alpha}`);
    checkSameShape(op, studentLogits, teacherLogits);
    return tidy(() => {
      const soft = klDivergence(logSoftmax(k.div(studentLogits, temperature), -1), softmax(k.div(detach(teacherLogits), temperature), -1), { reduction: 'batchmean' });
      const hard = crossEntropy(studentLogits, targets);
      return k.add(k.mul(soft, alpha * temperature * temperature), k.mul(hard, 1 - alpha));
    });
  });
}
