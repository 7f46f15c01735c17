/**
 * Attributions: which input values a model's prediction depends on. Both methods differentiate
 * one class score per example with respect to the input (kiln.gradients: the weights' gradients
 * are neither computed nor disturbed), so they work on any differentiable model.
 *
 * - saliency (Simonyan et al. 2014): |d score / d input|.
 * - integratedGradients (Sundararajan et al. 2017): (x - baseline) times the average gradient on
 *   the straight path from the baseline to x; the attributions add up to score(x) - score(baseline)
 *   (completeness), up to the error of the path integral's quadrature.
 */

import { tidy } from '../engine.js';
import { Tensor } from '../tensor.js';
import { detach, gradients, setRequiresGrad } from '../autograd.js';
import * as ew from '../ops/elementwise.js';
import * as red from '../ops/reduce.js';
import * as cr from '../ops/creation.js';
import * as sh from '../ops/shape.js';

const k = { ...ew, ...red, ...cr, ...sh };

/** A model: a Module (anything with forward) or a function from inputs [N, ...] to scores [N, C]. */
export type Scorer =
  | ((x: Tensor) => Tensor)
  | {
      /** Scores of a batch: [N, ...] -> [N, C]. */
      forward(x: Tensor): Tensor;
    };

/** Options of the gradient attributions: which class to explain. */
export interface AttributionOptions {
  /**
   * The class to explain per example: a number (the same class for all), an int32 [N] tensor or
   * an array of N numbers. Default: the model's own prediction (argmax of the scores).
   */
  target?: number | number[] | Tensor;
}

function scorer(model: Scorer): (x: Tensor) => Tensor {
  if (typeof model === 'function') return model;
  if (model !== null && typeof model === 'object' && typeof model.forward === 'function') return (x) => model.forward(x);
  throw new Error('attribution: model must be a function or an object with forward(x)');
}

/** Scores [N, C] -> the target class's score per example, [N] (and the targets used). */
function targetScores(op: string, scores: Tensor, target: AttributionOptions['target']): Tensor {
  if (scores.rank !== 2) throw new Error(`${op}: the model must return scores [batch, classes], got [${scores.shape.join(', ')}]`);
  const [n, c] = scores.shape;
  let t: Tensor;
  if (target === undefined) t = k.argmax(detach(scores), 1);
  else if (target instanceof Tensor) t = target;
  else {
    const list = typeof target === 'number' ? new Array(n).fill(target) : target;
    if (!Array.isArray(list) || list.length !== n) throw new Error(`${op}: target must give one int32 class per example ([${n}]), got ${String(target)}`);
    t = k.tensor(list, [n], 'int32');
  }
  if (t.dtype !== 'int32' || t.rank !== 1 || t.shape[0] !== n) {
    throw new Error(`${op}: target must give one int32 class per example ([${n}]), got ${t.dtype} [${t.shape.join(', ')}]`);
  }
  const values = t.dataSync();
  for (let i = 0; i < n; i++) {
    if (values[i] < 0 || values[i] >= c) throw new Error(`${op}: target ${values[i]} of example ${i} is out of range for ${c} classes`);
  }
  return k.sum(k.mul(scores, k.oneHot(t, c)), 1);
}

/**
 * d score_target / d x for each example (same shape as x). Examples do not interact as long as
 * the model treats them independently (eval mode: BatchNorm uses its running statistics).
 */
export function inputGradients(model: Scorer, x: Tensor, options: AttributionOptions = {}): Tensor {
  const f = scorer(model);
  return tidy(() => {
    const input = setRequiresGrad(detach(x));
    const score = targetScores('inputGradients', f(input), options.target);
    return gradients(k.sum(score), [input])[0] ?? k.zerosLike(x);
  });
}

/** Saliency map: |d score_target / d x|, the same shape as x. */
export function saliency(model: Scorer, x: Tensor, options: AttributionOptions = {}): Tensor {
  return tidy(() => k.abs(inputGradients(model, x, options)));
}

/** Options of `integratedGradients`: the baseline and the number of steps along the path. */
export interface IntegratedGradientsOptions extends AttributionOptions {
  /** The reference input, shaped like one example (x.shape without the batch axis); default all zeros. */
  baseline?: Tensor;
  /** Intervals of the trapezoidal rule along the path (default 32). */
  steps?: number;
}

/**
 * Integrated gradients, the same shape as x. Each example's path (steps + 1 points) runs through
 * the model as one batch. The target defaults to the prediction at x.
 */
export function integratedGradients(model: Scorer, x: Tensor, options: IntegratedGradientsOptions = {}): Tensor {
  const op = 'integratedGradients';
  const steps = options.steps ?? 32;
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`${op}: steps must be a positive integer, got ${steps}`);
  if (x.rank < 1 || x.shape[0] < 1) throw new Error(`${op}: x must be a batch [N, ...] with N >= 1, got [${x.shape.join(', ')}]`);
  const f = scorer(model);
  const n = x.shape[0];
  const one = x.shape.slice(1);
  return tidy(() => {
    const baseline = options.baseline ?? k.zeros(one);
    if (baseline.shape.join() !== one.join()) {
      throw new Error(`${op}: baseline must be shaped like one example [${one.join(', ')}], got [${baseline.shape.join(', ')}]`);
    }
    const b1 = k.reshape(baseline, [1, ...one]);
    const targets = options.target === undefined ? k.argmax(f(x), 1) : options.target;
    const targetList = targets instanceof Tensor ? Array.from(targets.dataSync()) : typeof targets === 'number' ? new Array(n).fill(targets) : targets;
    if (targetList.length !== n) throw new Error(`${op}: target must give one class per example (${n}), got ${targetList.length}`);
    // Trapezoid weights: 1/2 at both ends, 1 inside, over `steps` intervals.
    const weights = Array.from({ length: steps + 1 }, (_, i) => (i === 0 || i === steps ? 0.5 : 1) / steps);
    const alphas = k.tensor(Array.from({ length: steps + 1 }, (_, i) => i / steps), [steps + 1, ...one.map(() => 1)]);
    const w = k.tensor(weights, [steps + 1, ...one.map(() => 1)]);
    const rows: Tensor[] = [];
    for (let i = 0; i < n; i++) {
      rows.push(
        tidy(() => {
          const xi = k.slice(x, [i, ...one.map(() => 0)], [1, ...one]);
          const delta = k.sub(xi, b1);
          // The path points as one batch [steps + 1, ...]; a fresh leaf, so x needs no gradient.
          const path = setRequiresGrad(detach(k.add(b1, k.mul(alphas, delta))));
          const score = targetScores(op, f(path), targetList[i]);
          const g = gradients(k.sum(score), [path])[0] ?? k.zerosLike(path);
          return k.mul(delta, k.sum(k.mul(g, w), 0, true));
        }),
      );
    }
    return k.concat(rows, 0);
  });
}
