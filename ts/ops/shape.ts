/**
 * Ops that rearrange elements: reshape, transpose/permute, slice, expand are views (no copy) where
 * the layout allows; concat, stack, split, gather, scatterAdd, oneHot, pad, cast.
 */

import type { DType } from '../backends/backend.js';
import { backend } from '../engine.js';
import { wrap, type Tensor } from '../tensor.js';
import { axisList, handleOf } from './util.js';

function viewOp(name: string, x: Tensor, fn: (h: number) => number): Tensor {
  const b = backend();
  return wrap(fn(handleOf(x, name, b)), b);
}

/** Same elements, new shape; one entry may be -1 (inferred). A view when x is contiguous. */
export function reshape(x: Tensor, shape: number[]): Tensor {
  return viewOp('reshape', x, (h) => backend().impl.reshape(h, shape));
}

/** Reorders dimensions: output dim i is input dim perm[i]. A view. */
export function permute(x: Tensor, perm: number[]): Tensor {
  return viewOp('permute', x, (h) => backend().impl.permute(h, perm));
}

/** Permutes dimensions, reversing them when `perm` is omitted (a matrix transpose for 2-D). A view. */
export function transpose(x: Tensor, perm?: number[]): Tensor {
  return permute(x, perm ?? [...x.shape.keys()].reverse());
}

/**
 * `size[i]` elements from `begin[i]` along each dim (size -1 or omitted: to the end). A view.
 * [..., d, ...] -> [..., size, ...]
 */
export function slice(x: Tensor, begin: number[], size?: number[]): Tensor {
  return viewOp('slice', x, (h) => backend().impl.slice(h, begin, size ?? begin.map(() => -1)));
}

/** Broadcasts to `shape` (size-1 and missing leading dims grow). A view with stride 0. */
export function expand(x: Tensor, shape: number[]): Tensor {
  return viewOp('expand', x, (h) => backend().impl.expand(h, shape));
}

/** A contiguous copy (the same tensor's buffer when already contiguous). */
export function contiguous(x: Tensor): Tensor {
  return viewOp('contiguous', x, (h) => backend().impl.contiguous(h));
}

/** Removes size-1 dims (the given ones, or all). A view. */
export function squeeze(x: Tensor, axis?: number | number[]): Tensor {
  return viewOp('squeeze', x, (h) => backend().impl.squeeze(h, axisList(axis, 'squeeze')));
}

/** Inserts a size-1 dim at `axis`. A view. */
export function unsqueeze(x: Tensor, axis: number): Tensor {
  return viewOp('unsqueeze', x, (h) => backend().impl.unsqueeze(h, axis));
}

/** Converts elements to `dtype` (float -> int truncates toward zero; -> bool is x != 0). */
export function cast(x: Tensor, dtype: DType): Tensor {
  return viewOp('cast', x, (h) => backend().impl.cast(h, dtype));
}

/** Joins tensors along an existing axis. Shapes must match except along `axis`. */
export function concat(tensors: Tensor[], axis = 0): Tensor {
  const b = backend();
  return wrap(b.impl.concat(tensors.map((t, i) => handleOf(t, 'concat', b, `tensors[${i}]`)), axis), b);
}

/** Joins same-shape tensors along a new axis. n x [...s] -> [...s with n inserted at axis] */
export function stack(tensors: Tensor[], axis = 0): Tensor {
  const b = backend();
  return wrap(b.impl.stack(tensors.map((t, i) => handleOf(t, 'stack', b, `tensors[${i}]`)), axis), b);
}

/** Splits along `axis` into `count` equal views, or into views of the given sizes. */
export function split(x: Tensor, sizesOrCount: number | number[], axis = 0): Tensor[] {
  const b = backend();
  const h = handleOf(x, 'split', b);
  const handles = Array.isArray(sizesOrCount) ? b.impl.split(h, sizesOrCount, 0, axis) : b.impl.split(h, [], sizesOrCount, axis);
  return handles.map((r) => wrap(r, b));
}

/**
 * Picks entries along `axis` (indexSelect). x: [...pre, D, ...post], indices: int32 [...idx]
 * -> [...pre, ...idx, ...post]
 */
export function gather(x: Tensor, indices: Tensor, axis = 0): Tensor {
  const b = backend();
  return wrap(b.impl.gather(handleOf(x, 'gather', b), handleOf(indices, 'gather', b, 'indices'), axis), b);
}

/**
 * Adds `updates` into `base` at the positions `indices` name along `axis` (repeats accumulate);
 * the adjoint of gather. base: [...pre, D, ...post], indices: int32 [...idx],
 * updates: [...pre, ...idx, ...post] -> base's shape
 */
export function scatterAdd(base: Tensor, indices: Tensor, updates: Tensor, axis = 0): Tensor {
  const b = backend();
  return wrap(
    b.impl.scatterAdd(handleOf(base, 'scatterAdd', b, 'base'), handleOf(indices, 'scatterAdd', b, 'indices'), handleOf(updates, 'scatterAdd', b, 'updates'), axis),
    b,
  );
}

/** indices: int32 [...] with values in [0, depth) -> float32 [..., depth] */
export function oneHot(indices: Tensor, depth: number, onValue = 1, offValue = 0): Tensor {
  const b = backend();
  return wrap(b.impl.oneHot(handleOf(indices, 'oneHot', b, 'indices'), depth, onValue, offValue), b);
}

/** Pads dim i with paddings[i] = [before, after] elements of `value`. [..., d, ...] -> [..., before + d + after, ...] */
export function pad(x: Tensor, paddings: Array<[number, number]>, value = 0): Tensor {
  if (!Array.isArray(paddings) || !paddings.every((p) => Array.isArray(p) && p.length === 2)) {
    throw new Error(`pad: paddings must be an array of [before, after] pairs, got ${JSON.stringify(paddings)}`);
  }
  return viewOp('pad', x, (h) => backend().impl.pad(h, paddings.flat(), value));
}
