/**
 * The values of a model's small constants (Reshape's shape, axes, pads, a fused pattern's scalars)
 * read back to the host once, not on every run: the bench's Transformer encoder read 32 of them
 * per inference, a boundary call and a typed array each. OnnxModel marks its folded constants
 * when it folds them and each initializer when it starts watching it, and forgets the values it
 * may have kept whenever one of them is written in place or replaced (#forgetIfWritten,
 * loadStateDict, train, dispose), so a read here
 * always sees what dataSync would. Any other tensor is read back every time.
 */

import type { Tensor } from '../tensor.js';

/** Larger constants (an index table) are read each time rather than kept twice. */
const MAX_KEPT = 64;

const marked = new WeakSet<Tensor>();
const kept = new WeakMap<Tensor, readonly number[]>();

/** Marks `tensors` as constants of a model whose values may be kept between reads. */
export function markConstants(tensors: Iterable<Tensor>): void {
  for (const t of tensors) marked.add(t);
}

/** Drops the values kept for `tensors` (written in place, replaced, or freed). */
export function forgetConstantValues(tensors: Iterable<Tensor>): void {
  for (const t of tensors) kept.delete(t);
}

/** A tensor's values as numbers: kept after the first read for a small marked constant. */
export function hostValues(t: Tensor): readonly number[] {
  const known = kept.get(t);
  if (known !== undefined && !t.isDisposed) return known;
  const values = Array.from(t.dataSync(), Number);
  if (marked.has(t) && values.length <= MAX_KEPT) kept.set(t, values);
  return values;
}
