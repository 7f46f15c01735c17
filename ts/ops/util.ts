/** Helpers shared by the op wrappers: resolving inputs to handles on the active backend. */

import type { DType, LoadedBackend } from '../backends/backend.js';
import { backend } from '../engine.js';
import { Tensor, wrap, type TensorLike } from '../tensor.js';

/** The handle of `x` on backend `b`, with a clear error for foreign or non-tensor input. */
export function handleOf(x: unknown, op: string, b: LoadedBackend, arg = 'x'): number {
  if (!(x instanceof Tensor)) {
    throw new Error(`${op}: argument '${arg}' must be a Tensor, got ${describe(x)}`);
  }
  if (x.backend !== b) {
    if (x.backend.handles !== b.handles) {
      throw new Error(`${op}: argument '${arg}' lives on the '${x.backend.name}' backend but the active backend is '${b.name}'`);
    }
    // Its handle would name some other tensor in the fresh instance that replaced a faulted one.
    const lost = x.backend.impl.faulted?.();
    if (lost != null) throw new Error(`${op}: argument '${arg}' was lost: ${lost}`);
  }
  if (x.isDisposed) {
    // The tensor's own message says which tensor it was (dtype and shape when known); this one
    // adds the op and the argument the user passed it as.
    let detail = 'Tensor is disposed';
    try {
      void x.handle;
    } catch (e) {
      detail = (e as Error).message;
    }
    throw new Error(`${op}: argument '${arg}': ${detail}`);
  }
  return x.handle;
}

/** `handleOf` for an optional tensor argument: -1 (the boundary's "none") for null or undefined. */
export function optionalHandleOf(x: unknown, op: string, b: LoadedBackend, arg: string): number {
  return x == null ? -1 : handleOf(x, op, b, arg);
}

/**
 * Runs `fn` with handles for tensor-or-number inputs; numbers become float32 scalars that are
 * freed right after the call. Returns the wrapped result.
 */
export function withOperands(op: string, inputs: TensorLike[], names: string[], fn: (handles: number[], b: LoadedBackend) => number): Tensor {
  const b = backend();
  const temps: number[] = [];
  try {
    const handles = inputs.map((x, i) => {
      if (typeof x === 'number') {
        const h = b.impl.fromF32(new Float32Array([x]), []);
        temps.push(h);
        return h;
      }
      return handleOf(x, op, b, names[i]);
    });
    return wrap(fn(handles, b), b);
  } finally {
    for (const h of temps) b.impl.dispose(h);
  }
}

/** Normalizes an optional axis argument to a list (empty = all axes). */
export function axisList(axis: number | number[] | undefined, op = 'axis'): number[] {
  if (axis === undefined) return [];
  const list = Array.isArray(axis) ? axis : [axis];
  if (!list.every((a) => typeof a === 'number')) {
    throw new Error(`${op}: axis must be an integer or an array of integers, got ${JSON.stringify(axis)}`);
  }
  return list;
}

export function describe(x: unknown): string {
  if (x === null || x === undefined) return String(x);
  if (Array.isArray(x)) return `an array (wrap it with kiln.tensor)`;
  return typeof x === 'object' ? (x.constructor?.name ?? 'object') : `${typeof x} ${String(x)}`;
}

/** Checks a shape argument: an array of non-negative integers. */
export function checkShape(op: string, shape: unknown): number[] {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new Error(`${op}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  return shape as number[];
}

/**
 * Wraps the results of one resolved call site (an op's `...For` variant, called again and again
 * on inputs of the same dims: the ONNX importer's compiled runs, ts/onnx/replay.ts): the first
 * call's results ask the backend their shape and dtype, later calls' results (result `i` of a call
 * site is always alike) are given them, which saves two boundary calls per result.
 */
export function resultsOf(be: LoadedBackend): (handle: number, i?: number) => Tensor {
  const known: Array<{ shape: number[]; dtype: DType }> = [];
  return (handle, i = 0) => {
    const seen = known[i];
    const t = wrap(handle, be, seen?.shape, seen?.dtype);
    if (seen === undefined) known[i] = { shape: [...t.shape], dtype: t.dtype };
    return t;
  };
}
