/** Creating tensors: from JS data, constants, ranges, identity and seeded random numbers. */

import type { DType } from '../backends/backend.js';
import { backend } from '../engine.js';
import { Tensor, wrap, type NestedArray } from '../tensor.js';
import { checkShape } from './util.js';

export type { NestedArray };
/** What `tensor` accepts: nested arrays, or a flat typed array with a shape. */
export type TensorData = NestedArray | Float32Array | Int32Array | Uint8Array | Int8Array;

function inferShape(values: NestedArray): number[] {
  const shape: number[] = [];
  let v: NestedArray = values;
  while (Array.isArray(v)) {
    shape.push(v.length);
    v = v[0];
  }
  return shape;
}

function flatten(values: NestedArray, shape: number[], out: Array<number | boolean>, dim = 0): void {
  if (dim === shape.length) {
    if (Array.isArray(values)) throw new Error(`tensor: ragged nested array (expected shape [${shape.join(', ')}])`);
    out.push(values);
    return;
  }
  if (!Array.isArray(values) || values.length !== shape[dim]) {
    throw new Error(`tensor: ragged nested array: dimension ${dim} should have ${shape[dim]} entries (shape [${shape.join(', ')}])`);
  }
  for (const v of values) flatten(v, shape, out, dim + 1);
}

const INTEGER_RANGE = { int32: [-(2 ** 31), 2 ** 31 - 1], int8: [-128, 127] } as const;

/**
 * Integer tensors take integers in their dtype's range; anything else is an error rather than a
 * silent truncation or wrap-around (1.5 -> 1, 2^31 -> -2^31, NaN -> 0). PyTorch's torch.tensor
 * also refuses out-of-range values; it truncates fractions, but in JS, where every number is a
 * double, a fraction bound for an int32 tensor is almost always a bug. `cast` converts on purpose.
 */
function checkIntegers(values: ArrayLike<number | boolean>, dtype: 'int32' | 'int8'): ArrayLike<number | boolean> {
  const [lo, hi] = INTEGER_RANGE[dtype];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v === 'boolean') continue;
    if (!Number.isInteger(v) || v < lo || v > hi) {
      throw new Error(`tensor: ${dtype} values must be integers from ${lo} to ${hi}, but element ${i} is ${v}; round it first (Math.round) or make a float32 tensor and cast it`);
    }
  }
  return values;
}

/**
 * A tensor from JS data. `values`: a number, nested arrays, or a typed array (then `shape` is
 * needed unless it is 1-D). dtype defaults to float32; int32 for an Int32Array or Uint8Array
 * (bytes are usually labels or pixels, as in tfjs), int8 for an Int8Array; bool only for booleans or an explicit 'bool'.
 * Values for an int32 or int8 tensor must be integers in the dtype's range (else an Error).
 * -> `shape` (inferred from nesting when omitted).
 */
export function tensor(values: TensorData, shape?: number[], dtype?: DType): Tensor {
  let flat: ArrayLike<number | boolean>;
  let inferred: number[];
  if (ArrayBuffer.isView(values)) {
    flat = values;
    inferred = [values.length];
    dtype ??= values instanceof Int8Array ? 'int8' : values instanceof Int32Array || values instanceof Uint8Array ? 'int32' : 'float32';
  } else {
    inferred = inferShape(values);
    const out: Array<number | boolean> = [];
    flatten(values, inferred, out);
    flat = out;
    dtype ??= typeof out[0] === 'boolean' ? 'bool' : 'float32';
  }
  const finalShape = shape ? checkShape('tensor', shape) : inferred;
  const b = backend();
  switch (dtype) {
    case 'float32': {
      const data = flat instanceof Float32Array ? flat : Float32Array.from(flat as ArrayLike<number>, Number);
      return wrap(b.impl.fromF32(data, finalShape), b);
    }
    case 'int32': {
      const data = flat instanceof Int32Array || flat instanceof Uint8Array ? Int32Array.from(flat) : Int32Array.from(checkIntegers(flat, 'int32'), Number);
      return wrap(b.impl.fromI32(data, finalShape), b);
    }
    case 'bool': {
      const data = Uint8Array.from(flat as ArrayLike<number>, (v) => (v ? 1 : 0));
      return wrap(b.impl.fromBool(data, finalShape), b);
    }
    case 'int8': {
      const data = flat instanceof Int8Array ? flat : Int8Array.from(checkIntegers(flat, 'int8'), Number);
      return wrap(b.impl.fromI8(data, finalShape), b);
    }
    default:
      throw new Error(`tensor: unsupported dtype '${String(dtype)}' (expected float32, int32, int8 or bool)`);
  }
}

/** A rank-0 tensor. -> [] */
export function scalar(value: number | boolean, dtype?: DType): Tensor {
  return tensor(value, [], dtype);
}

function filled(op: string, shape: number[], value: number, dtype: DType): Tensor {
  const b = backend();
  return wrap(b.impl.full(checkShape(op, shape), value, dtype, op), b);
}

/** A tensor of `shape` filled with `value`. -> shape */
export function full(shape: number[], value: number, dtype: DType = 'float32'): Tensor {
  return filled('full', shape, value, dtype);
}

/** Zeros. -> shape */
export function zeros(shape: number[], dtype: DType = 'float32'): Tensor {
  return filled('zeros', shape, 0, dtype);
}

/** Ones. -> shape */
export function ones(shape: number[], dtype: DType = 'float32'): Tensor {
  return filled('ones', shape, 1, dtype);
}

/** Zeros with the shape and dtype of `x`. */
export function zerosLike(x: Tensor): Tensor {
  return full([...x.shape], 0, x.dtype);
}

/** Ones with the shape and dtype of `x`. */
export function onesLike(x: Tensor): Tensor {
  return full([...x.shape], 1, x.dtype);
}

/**
 * Evenly spaced values in [start, stop). `arange(n)` is 0..n-1. -> [ceil((stop - start) / step)]
 */
export function arange(start: number, stop?: number, step = 1, dtype: DType = 'float32'): Tensor {
  if (stop === undefined) [start, stop] = [0, start];
  const b = backend();
  return wrap(b.impl.arange(start, stop, step, dtype), b);
}

/** Identity matrix. -> [rows, cols ?? rows] */
export function eye(rows: number, cols = rows): Tensor {
  const b = backend();
  return wrap(b.impl.eye(rows, cols), b);
}

/** Options of the random creation functions (randn, randu, ...). */
export interface RandomOptions {
  /** Same seed, same numbers. Without one, the global generator (see setSeed) is used. */
  seed?: number;
}

/**
 * A seed is a non-negative integer up to 2^53. Fractions, negatives and NaN would otherwise be
 * converted silently (1.5 and 1 giving the same numbers, -1 and 0 too). undefined passes through.
 */
function checkSeed(op: string, seed: number | undefined): number | undefined {
  if (seed !== undefined && !(Number.isSafeInteger(seed) && seed >= 0)) {
    throw new Error(`${op}: seed must be a non-negative integer (at most 2^53), got ${String(seed)}`);
  }
  return seed;
}

/** Normal samples N(mean, std²). -> shape, float32 */
export function randn(shape: number[], options: RandomOptions & { mean?: number; std?: number } = {}): Tensor {
  const b = backend();
  return wrap(b.impl.randn(checkShape('randn', shape), options.mean ?? 0, options.std ?? 1, checkSeed('randn', options.seed)), b);
}

/** Uniform samples in [low, high). -> shape, float32 */
export function randu(shape: number[], options: RandomOptions & { low?: number; high?: number } = {}): Tensor {
  const b = backend();
  return wrap(b.impl.randu(checkShape('randu', shape), options.low ?? 0, options.high ?? 1, checkSeed('randu', options.seed)), b);
}

/** Reseeds the global generator used by randn/randu calls without a seed (a non-negative integer). */
export function setSeed(seed: number): void {
  backend().impl.setSeed(checkSeed('setSeed', seed)!);
}
