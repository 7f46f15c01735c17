/** Reductions as tensor methods: `x.sum(1)`, `x.softmax()` (bodies in ops/reduce.ts). */

import { attachMethods } from './attach.js';
import * as reduction from '../ops/reduce.js';

declare module '../tensor.js' {
  interface Tensor {
    /** Sum over `axis` (one, several, or all when omitted); `keepDims` keeps the reduced axes as size 1. */
    sum(axis?: number | number[], keepDims?: boolean): Tensor;
    /** Mean over `axis` (all when omitted); `keepDims` keeps the reduced axes as size 1. */
    mean(axis?: number | number[], keepDims?: boolean): Tensor;
    /** Maximum over `axis` (all when omitted); NaN propagates. */
    max(axis?: number | number[], keepDims?: boolean): Tensor;
    /** Minimum over `axis` (all when omitted); NaN propagates. */
    min(axis?: number | number[], keepDims?: boolean): Tensor;
    /** int32 index of the maximum along `axis` (of the flattened tensor when omitted). */
    argmax(axis?: number): Tensor;
    /** int32 index of the minimum along `axis` (of the flattened tensor when omitted). */
    argmin(axis?: number): Tensor;
    /** Variance over `axis` (all when omitted), divided by N - `correction` (default 0: the population variance). */
    variance(axis?: number | number[], keepDims?: boolean, correction?: number): Tensor;
    /** log(sum(exp(x))) over `axis`, computed stably (the row maximum is subtracted first). */
    logSumExp(axis?: number | number[], keepDims?: boolean): Tensor;
    /** Softmax along `axis` (default the last): [..., n] -> [..., n], rows summing to 1. */
    softmax(axis?: number): Tensor;
    /** log(softmax(x)) along `axis` (default the last), computed stably. */
    logSoftmax(axis?: number): Tensor;
  }
}

attachMethods({
  sum(axis, keepDims) { return reduction.sum(this, axis, keepDims); },
  mean(axis, keepDims) { return reduction.mean(this, axis, keepDims); },
  max(axis, keepDims) { return reduction.max(this, axis, keepDims); },
  min(axis, keepDims) { return reduction.min(this, axis, keepDims); },
  argmax(axis) { return reduction.argmax(this, axis); },
  argmin(axis) { return reduction.argmin(this, axis); },
  variance(axis, keepDims, correction) {
    return reduction.variance(this, axis, keepDims, correction);
  },
  logSumExp(axis, keepDims) { return reduction.logSumExp(this, axis, keepDims); },
  softmax(axis) { return reduction.softmax(this, axis); },
  logSoftmax(axis) { return reduction.logSoftmax(this, axis); },
});
