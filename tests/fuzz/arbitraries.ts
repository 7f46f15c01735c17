/**
 * fast-check arbitraries for the fuzzer (tests/fixtures/boundary-fuzz.ts): shapes, tensors as
 * plain specs (so a failing case prints and shrinks), and the random arguments of the 'raw' and
 * 'api' surfaces. A spec becomes a live tensor only inside a case (`materialize`), so each case
 * owns and frees its tensors.
 */
import fc from 'fast-check';
import * as kiln from '../../ts/index.js';
import type { DType } from '../../ts/index.js';

/** How a tensor is presented to the op: as made, or as a view with unusual strides. */
export type ViewKind = 'plain' | 'transposed' | 'sliced' | 'expanded';

export interface TensorSpec {
  shape: number[];
  dtype: DType;
  /** Row-major values of the final (viewed) tensor's source; length = product of `shape`. */
  values: number[];
  view: ViewKind;
  /** A tensor that is disposed before the call. */
  disposed?: boolean;
}

/** Small dims, with 0 (empty tensors) now and then. */
export const dim = fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 1, max: 4 }) }, { weight: 1, arbitrary: fc.constant(0) });
export const shapeOf = (minRank = 0, maxRank = 4): fc.Arbitrary<number[]> => fc.array(dim, { minLength: minRank, maxLength: maxRank });

/** Finite floats of moderate size, plus exact small values; `special` adds NaN and ±Infinity. */
export function floatValue(special = false): fc.Arbitrary<number> {
  const finite = fc.oneof(
    fc.constantFrom(0, 1, -1, 0.5, 2, -3),
    fc.float({ min: -100, max: 100, noNaN: true, noDefaultInfinity: true }),
  );
  return special ? fc.oneof({ weight: 6, arbitrary: finite }, { weight: 1, arbitrary: fc.constantFrom(NaN, Infinity, -Infinity, 3e38, -3e38, 1e-40) }) : finite;
}

const intValue = fc.oneof(fc.integer({ min: -5, max: 5 }), fc.constantFrom(2147483647, -2147483648));

export function valuesFor(dtype: DType, n: number, special = false): fc.Arbitrary<number[]> {
  const v = dtype === 'float32' ? floatValue(special) : dtype === 'bool' ? fc.constantFrom(0, 1) : dtype === 'int8' ? fc.integer({ min: -128, max: 127 }) : intValue;
  return fc.array(v, { minLength: n, maxLength: n });
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** A tensor spec of the given shape and dtype (any view). */
export function tensorOf(shape: number[], dtype: DType, special = false, views: ViewKind[] = ['plain', 'transposed', 'sliced', 'expanded']): fc.Arbitrary<TensorSpec> {
  return fc.record({
    shape: fc.constant(shape),
    dtype: fc.constant(dtype),
    values: valuesFor(dtype, numel(shape), special),
    view: fc.constantFrom(...views),
  });
}

/** Any tensor spec: random shape (rank 0-4), dtype and view; values may hold NaN/Inf. */
export const anyTensor: fc.Arbitrary<TensorSpec> = fc
  .tuple(shapeOf(), fc.constantFrom<DType>('float32', 'float32', 'int32', 'bool', 'int8'))
  .chain(([shape, dtype]) => tensorOf(shape, dtype, true));

/**
 * Makes the tensor a spec describes. The view kinds give the same logical tensor (same shape and
 * values) through different strides, so an op must not care which it got:
 * transposed: made with the last two dims swapped and permuted back; sliced: cut out of a larger
 * tensor; expanded: a size-1 dim broadcast (only where the values along it are equal, else plain).
 */
export function materialize(spec: TensorSpec, made: Array<{ dispose(): void }>): kiln.Tensor {
  const { shape, dtype, values } = spec;
  const keep = (t: kiln.Tensor) => (made.push(t), t);
  const base = (vals: number[], s: number[]) => keep(kiln.tensor(dtype === 'bool' ? vals.map((v) => v !== 0) : vals, s, dtype));
  let t: kiln.Tensor;
  const r = shape.length;
  if (spec.view === 'transposed' && r >= 2) {
    const perm = [...shape.keys()];
    [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
    const swapped = perm.map((p) => shape[p]);
    const vals = new Array(values.length);
    // element at index (.., i, j) of `shape` sits at (.., j, i) of `swapped`
    const strides = stridesOf(swapped);
    forEachIndex(shape, (idx, flat) => {
      const j = [...idx];
      [j[r - 2], j[r - 1]] = [j[r - 1], j[r - 2]];
      vals[j.reduce((a, v, k) => a + v * strides[k], 0)] = values[flat];
    });
    t = keep(kiln.permute(base(vals, swapped), perm));
  } else if (spec.view === 'sliced' && r >= 1) {
    const bigger = [...shape];
    bigger[0] += 2;
    const inner = numel(shape.slice(1));
    const pad = new Array(inner).fill(dtype === 'bool' ? 0 : 7);
    t = keep(kiln.slice(base([...pad, ...values, ...pad], bigger), [1, ...shape.slice(1).map(() => 0)], shape));
  } else if (spec.view === 'expanded' && r >= 1 && shape[0] > 1 && allRowsEqual(values, shape)) {
    t = keep(kiln.expand(base(values.slice(0, numel(shape.slice(1))), [1, ...shape.slice(1)]), shape));
  } else {
    t = base(values, shape);
  }
  if (spec.disposed) t.dispose();
  return t;
}

function allRowsEqual(values: number[], shape: number[]): boolean {
  const inner = numel(shape.slice(1));
  return values.every((v, i) => Object.is(v, values[i % inner]));
}

export function stridesOf(shape: number[]): number[] {
  const s = new Array(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1];
  return s;
}

/** Calls fn(index, flatIndex) for every index of `shape` in row-major order. */
export function forEachIndex(shape: number[], fn: (idx: number[], flat: number) => void): void {
  const n = numel(shape);
  const idx = new Array(shape.length).fill(0);
  for (let flat = 0; flat < n; flat++) {
    fn(idx, flat);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

// ---- random arguments for the 'raw' and 'api' surfaces -------------------------------------------

/**
 * Sizes that must fail cleanly: too large to allocate or to multiply (2^40, 2^53), negative,
 * fractional, NaN. Not sizes from 2^26 to 2^40: those are legal requests of up to terabytes that
 * the OS may grant lazily and then kill the process for; refusing them ahead (issue 13, class 2)
 * is outside this fuzzer's part, so they would only make the run slow or OOM-killed.
 */
const HUGE = [2 ** 40, 2 ** 53];
export const NUMBERS = [0, 1, 2, 3, -1, -2, 0.5, 7, 64, ...HUGE, -(2 ** 45), NaN, Infinity, -Infinity, 1e-30];

export const randomShape: fc.Arbitrary<number[]> = fc.oneof(
  { weight: 8, arbitrary: shapeOf() },
  // [0, 2^32 + 5] holds no elements but must keep its dims (a 32-bit boundary would make it [0, 5]).
  { weight: 1, arbitrary: fc.constantFrom<number[]>([2 ** 40, 2 ** 40], [0, 2 ** 32 + 5], [-1, 3], [2.5], [NaN], [2 ** 31, 2 ** 31, 2 ** 31]) },
);

/** An argument: a tensor (live or disposed), a number, a shape, an option bag, a dtype name, a typed array, junk. */
export type ArgSpec = { tensor: TensorSpec } | { tensors: TensorSpec[] } | { value: unknown };

export const randomArg: fc.Arbitrary<ArgSpec> = fc.oneof(
  // One tensor in five is disposed before the call.
  { weight: 9, arbitrary: fc.record({ tensor: fc.tuple(anyTensor, fc.integer({ min: 0, max: 4 })).map(([t, k]) => (k === 0 ? { ...t, disposed: true } : t)) }) },
  { weight: 7, arbitrary: fc.record({ value: fc.constantFrom(...NUMBERS) }) },
  { weight: 3, arbitrary: fc.record({ value: randomShape }) },
  { weight: 1, arbitrary: fc.record({ tensors: fc.array(anyTensor, { maxLength: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ value: fc.constantFrom({ axis: 1 }, { axis: NaN }, { seed: 1, std: -1 }, { keepDims: 'yes' }, { reduction: 'bogus' }, { causal: true }, {}) }) },
  { weight: 1, arbitrary: fc.record({ value: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ value: fc.constantFrom('float32', 'int32', 'bool', 'int8', 'nonsense', '') }) },
  { weight: 1, arbitrary: fc.record({ value: fc.array(fc.constantFrom(...NUMBERS), { maxLength: 6 }).map((a) => Float32Array.from(a)) }) },
  { weight: 1, arbitrary: fc.record({ value: fc.constantFrom(undefined, null, 'x', () => 1) }) },
);

/** An ArgSpec as the value passed: the Tensor (api) or its handle (raw). */
export function argValue(a: ArgSpec, made: Array<{ dispose(): void }>, raw: boolean): unknown {
  const asArg = (t: kiln.Tensor) => (raw ? t.handle : t);
  if ('tensor' in a) return asArg(materialize(a.tensor, made));
  if ('tensors' in a) return a.tensors.map((s) => asArg(materialize(s, made)));
  return a.value;
}

/** JSON with NaN/Infinity/functions readable, for failure reports. */
export function show(x: unknown): string {
  return JSON.stringify(x, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : typeof v === 'function' ? 'fn' : v instanceof Float32Array ? Array.from(v) : v)) ?? 'undefined';
}
