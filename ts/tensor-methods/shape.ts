/** Shape and indexing ops as tensor methods: `x.reshape([2, -1])`, `x.gather(ids)` (bodies in ops/shape.ts). */

import { attachMethods } from './attach.js';
import * as shapeOps from '../ops/shape.js';
import type { DType } from '../backends/backend.js';

declare module '../tensor.js' {
  interface Tensor {
    /** The same elements in `shape` (one entry may be -1, inferred); shares the buffer when it can. */
    reshape(shape: number[]): Tensor;
    /** The elements as one axis: [d0, ..., dk] -> [d0 * ... * dk]. */
    flatten(): Tensor;
    /** Permutes the axes by `perm` (default: reversed, so a matrix is transposed). */
    transpose(perm?: number[]): Tensor;
    /** Permutes the axes: output axis i is input axis perm[i]. */
    permute(perm: number[]): Tensor;
    /** The block starting at `begin` with `size` elements per axis (-1 or omitted: to the end). */
    slice(begin: number[], size?: number[]): Tensor;
    /** Broadcasts size-1 axes to `shape` without copying (a view). */
    expand(shape: number[]): Tensor;
    /** The same as `expand`: broadcasts size-1 axes to `shape` without copying. */
    broadcastTo(shape: number[]): Tensor;
    /** A row-major copy of a view (itself if it already is one). */
    contiguous(): Tensor;
    /** Removes size-1 axes (`axis`, or all of them when omitted). */
    squeeze(axis?: number | number[]): Tensor;
    /** Inserts a size-1 axis at `axis`. */
    unsqueeze(axis: number): Tensor;
    /** Inserts a size-1 axis at `axis` (default 0), as tf.expandDims. */
    expandDims(axis?: number): Tensor;
    /** Converts to `dtype` ('float32', 'int32', 'int8', 'bool'); float to int truncates toward zero. */
    cast(dtype: DType): Tensor;
    /** Splits along `axis` (default 0) into `count` equal parts or parts of the given sizes. */
    split(sizesOrCount: number | number[], axis?: number): Tensor[];
    /** Rows picked by the int32 `indices` along `axis` (default 0): [n, ...] with indices [m] -> [m, ...]. */
    gather(indices: Tensor, axis?: number): Tensor;
    /** PyTorch's spelling of `gather`: rows picked by `indices` along `axis`. */
    indexSelect(axis: number, indices: Tensor): Tensor;
    /** A copy with `updates` added at `indices` along `axis` (default 0); repeated indices accumulate. */
    scatterAdd(indices: Tensor, updates: Tensor, axis?: number): Tensor;
    /** int32 class ids [n] -> [n, depth], `onValue` (1) at each id and `offValue` (0) elsewhere. */
    oneHot(depth: number, onValue?: number, offValue?: number): Tensor;
    /** Pads each axis by [before, after] elements of `value` (default 0). */
    pad(paddings: Array<[number, number]>, value?: number): Tensor;
    /** A new tensor with the same elements (a fresh handle; the buffer is shared, which is safe since tensors are immutable). */
    clone(): Tensor;
  }
}

attachMethods({
  reshape(shape) { return shapeOps.reshape(this, shape); },
  flatten() { return shapeOps.reshape(this, [-1]); },
  transpose(perm) { return shapeOps.transpose(this, perm); },
  permute(perm) { return shapeOps.permute(this, perm); },
  slice(begin, size) { return shapeOps.slice(this, begin, size); },
  expand(shape) { return shapeOps.expand(this, shape); },
  broadcastTo(shape) { return shapeOps.expand(this, shape); },
  contiguous() { return shapeOps.contiguous(this); },
  squeeze(axis) { return shapeOps.squeeze(this, axis); },
  unsqueeze(axis) { return shapeOps.unsqueeze(this, axis); },
  expandDims(axis = 0) { return shapeOps.unsqueeze(this, axis); },
  cast(dtype) { return shapeOps.cast(this, dtype); },
  split(sizesOrCount, axis) { return shapeOps.split(this, sizesOrCount, axis); },
  gather(indices, axis) { return shapeOps.gather(this, indices, axis); },
  indexSelect(axis, indices) { return shapeOps.gather(this, indices, axis); },
  scatterAdd(indices, updates, axis) { return shapeOps.scatterAdd(this, indices, updates, axis); },
  oneHot(depth, onValue, offValue) { return shapeOps.oneHot(this, depth, onValue, offValue); },
  pad(paddings, value) { return shapeOps.pad(this, paddings, value); },
  clone() { return shapeOps.reshape(this, [...this.shape]); },
});
