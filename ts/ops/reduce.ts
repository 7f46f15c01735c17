/** Reductions over any axes (keepDims keeps them as size 1), softmax and logSoftmax. */

import { backend } from '../engine.js';
import { wrap, type Tensor } from '../tensor.js';
import { axisList, handleOf } from './util.js';

function reduceOp(name: string, x: Tensor, axis: number | number[] | undefined, keepDims = false, correction = 0): Tensor {
  const b = backend();
  return wrap(b.impl.reduce(b.codes.reduce[name], handleOf(x, name, b), axisList(axis, name), keepDims, correction), b);
}

/** Sum over `axis` (all axes when omitted). [..., d, ...] -> [..., ...] (or size 1 with keepDims) */
export const sum = (x: Tensor, axis?: number | number[], keepDims = false): Tensor => reduceOp('sum', x, axis, keepDims);
/** Mean over `axis` (all when omitted). [..., d, ...] -> [..., ...] */
export const mean = (x: Tensor, axis?: number | number[], keepDims = false): Tensor => reduceOp('mean', x, axis, keepDims);
/** Maximum over `axis` (NaN propagates). [..., d, ...] -> [..., ...] */
export const max = (x: Tensor, axis?: number | number[], keepDims = false): Tensor => reduceOp('max', x, axis, keepDims);
/** Minimum over `axis` (NaN propagates). [..., d, ...] -> [..., ...] */
export const min = (x: Tensor, axis?: number | number[], keepDims = false): Tensor => reduceOp('min', x, axis, keepDims);
/** Index of the first maximum along `axis` (over the flattened tensor when omitted). -> int32 */
export const argmax = (x: Tensor, axis?: number): Tensor => reduceOp('argmax', x, axis);
/** Index of the first minimum along `axis` (over the flattened tensor when omitted). -> int32 */
export const argmin = (x: Tensor, axis?: number): Tensor => reduceOp('argmin', x, axis);
/**
 * Variance over `axis`: sum((x - mean)²) / (n - correction). correction 0 (default) is the
 * population variance (NumPy, tfjs.moments); 1 is the sample variance (torch.var's default).
 */
export function variance(x: Tensor, axis?: number | number[], keepDims = false, correction = 0): Tensor {
  // A correction above the count reduced is refused by kiln-core (it knows the count).
  if (!(Number.isSafeInteger(correction) && correction >= 0)) throw new Error(`variance: correction must be a non-negative integer, got ${String(correction)}`);
  return reduceOp('variance', x, axis, keepDims, correction);
}
/** log(sum(e^x)) over `axis`, computed stably. [..., d, ...] -> [..., ...] */
export const logSumExp = (x: Tensor, axis?: number | number[], keepDims = false): Tensor => reduceOp('logSumExp', x, axis, keepDims);

/** e^x / sum(e^x) along `axis` (default last), stable for large logits. any shape -> same shape */
export function softmax(x: Tensor, axis = -1): Tensor {
  const b = backend();
  return wrap(b.impl.softmax(handleOf(x, 'softmax', b), axis, false), b);
}

/** x - logSumExp(x) along `axis` (default last). any shape -> same shape */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const b = backend();
  return wrap(b.impl.softmax(handleOf(x, 'logSoftmax', b), axis, true), b);
}
