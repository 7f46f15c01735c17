/**
 * Shared test helpers: a seeded PRNG for inputs, conversions between Kiln tensors and reference
 * arrays, and closeness assertions whose failure messages say where and by how much.
 */
import { afterEach, beforeEach, expect } from 'vitest';
import * as kiln from '../ts/index.js';
import type { Tensor } from '../ts/index.js';
import { type ND, sizeOf, unravel } from './reference.js';

// ---- seeded random inputs ----------------------------------------------------------------------

/** mulberry32: a tiny, well-known 32-bit PRNG. Returns floats in [0, 1). */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform float32-representable values in [low, high), as a reference array. */
export function randND(shape: number[], seed: number, low = -1, high = 1): ND {
  const r = prng(seed);
  const data = Array.from({ length: sizeOf(shape) }, () => Math.fround(low + (high - low) * r()));
  return { shape: [...shape], data };
}

/** Integers in [low, high). */
export function randIntND(shape: number[], seed: number, low: number, high: number): ND {
  const r = prng(seed);
  return { shape: [...shape], data: Array.from({ length: sizeOf(shape) }, () => low + Math.floor((high - low) * r())) };
}

// ---- conversions -------------------------------------------------------------------------------

/** A float32 Kiln tensor holding a reference array. */
export function T(x: ND): Tensor {
  return kiln.tensor(Float32Array.from(x.data), [...x.shape]);
}

/** An int32 Kiln tensor holding a reference array. */
export function Ti(x: ND): Tensor {
  return kiln.tensor(Int32Array.from(x.data), [...x.shape]);
}

/** A bool Kiln tensor holding a reference array (non-zero = true). */
export function Tb(x: ND): Tensor {
  return kiln.tensor(Uint8Array.from(x.data, (v) => (v ? 1 : 0)), [...x.shape], 'bool');
}

/** Reads a tensor back (asynchronously, so the suite also runs on backends with async readback). */
export async function read(t: Tensor): Promise<number[]> {
  return Array.from(await t.data());
}

/** The values of the tensor `fn` makes (its temporaries freed by a tidy), read asynchronously. */
export async function readOf(fn: () => Tensor): Promise<number[]> {
  const t = kiln.tidy(fn);
  try {
    return await read(t);
  } finally {
    t.dispose();
  }
}

/** A tensor as a reference array. */
export async function toND(t: Tensor): Promise<ND> {
  return { shape: [...t.shape], data: await read(t) };
}

// ---- closeness ---------------------------------------------------------------------------------

export interface Tol {
  /** Absolute tolerance. */
  atol?: number;
  /** Relative tolerance (relative to the expected value). */
  rtol?: number;
  /** Round expected values to float32 first (default true): overflow to ±inf, underflow to 0. */
  roundExpected?: boolean;
}

export const DEFAULT_TOL: Required<Tol> = { atol: 1e-5, rtol: 1e-5, roundExpected: true };

/** |a - b| <= atol + rtol·|b|, NaN equals NaN, infinities must match exactly. */
export function isClose(a: number, b: number, atol: number, rtol: number): boolean {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b);
  if (!Number.isFinite(a) || !Number.isFinite(b)) return a === b;
  return Math.abs(a - b) <= atol + rtol * Math.abs(b);
}

function fmtIndex(i: number, shape?: readonly number[]): string {
  return shape && shape.length > 0 && sizeOf(shape) > i ? `[${unravel(i, shape).join(', ')}]` : `#${i}`;
}

/**
 * Asserts elementwise closeness of two flat arrays. The failure lists the first mismatches with
 * their multi-index, the inputs that produced them (when given), and the tolerance.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: Tol = {},
  label = '',
  info: { shape?: readonly number[]; inputs?: ArrayLike<number> } = {},
): void {
  const { atol, rtol, roundExpected } = { ...DEFAULT_TOL, ...tol };
  const where = label ? `${label}: ` : '';
  if (actual.length !== expected.length) {
    throw new Error(`${where}length ${actual.length} differs from expected ${expected.length}`);
  }
  const bad: string[] = [];
  let count = 0;
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const b = roundExpected ? Math.fround(expected[i]) : expected[i];
    if (!isClose(a, b, atol, rtol)) {
      count++;
      if (Number.isFinite(a) && Number.isFinite(b)) worst = Math.max(worst, Math.abs(a - b));
      if (bad.length < 8) {
        const input = info.inputs ? ` for input ${info.inputs[i]}` : '';
        bad.push(`  at ${fmtIndex(i, info.shape)}${input}: got ${a}, expected ${b} (diff ${Math.abs(a - b)})`);
      }
    }
  }
  if (count > 0) {
    throw new Error(
      `${where}${count} of ${actual.length} elements differ (atol ${atol}, rtol ${rtol}` +
        `${worst > 0 ? `, worst finite diff ${worst}` : ''}):\n${bad.join('\n')}${count > bad.length ? '\n  ...' : ''}`,
    );
  }
}

/** Exact equality of flat arrays (NaN equals NaN), with the same failure report. */
export function assertEqual(actual: ArrayLike<number>, expected: ArrayLike<number>, label = '', shape?: readonly number[]): void {
  assertClose(actual, expected, { atol: 0, rtol: 0, roundExpected: false }, label, { shape });
}

export interface Expectation extends Tol {
  shape?: readonly number[];
  dtype?: kiln.DType;
  /** Expected values, flat or as a reference array (whose shape is then checked too). */
  values?: ArrayLike<number> | ND;
  /** Exact comparison (ints, bools, data movement). */
  exact?: boolean;
}

function isND(v: unknown): v is ND {
  return typeof v === 'object' && v !== null && 'shape' in v && 'data' in v;
}

/** Checks a tensor's shape, dtype and values. */
export async function expectTensor(t: Tensor, exp: Expectation, label = ''): Promise<void> {
  const where = label ? `${label}: ` : '';
  const shape = exp.shape ?? (isND(exp.values) ? exp.values.shape : undefined);
  if (shape !== undefined) expect([...t.shape], `${where}shape`).toEqual([...shape]);
  if (exp.dtype !== undefined) expect(t.dtype, `${where}dtype`).toBe(exp.dtype);
  if (exp.values !== undefined) {
    const want = isND(exp.values) ? exp.values.data : exp.values;
    const got = await read(t);
    if (exp.exact) assertEqual(got, want, label, t.shape);
    else assertClose(got, want, exp, label, { shape: t.shape });
  }
}

// ---- errors ------------------------------------------------------------------------------------

/** Checks that `err` is a proper Error (not a crash, not an internal panic) naming every fragment. */
function checkThrown(err: unknown, fragments: Array<string | RegExp>): Error {
  expect(err, 'expected the call to throw').toBeDefined();
  expect(err).toBeInstanceOf(Error);
  const msg = (err as Error).message;
  expect(msg, `an internal error (panic) is not a proper error: ${msg}`).not.toMatch(/internal error/i);
  for (const f of fragments) {
    if (typeof f === 'string') expect(msg, `message should mention '${f}'`).toContain(f);
    else expect(msg, `message should match ${f}`).toMatch(f);
  }
  return err as Error;
}

/**
 * Checks `expectThrows` could not make at once: on the GPU in a page an error a kernel finds
 * arrives with the next read, asynchronously. tests/backends.ts awaits them after every test
 * (settleDeferredChecks), so a deferred check that fails fails its test.
 */
const deferredChecks: Array<Promise<unknown>> = [];

/** Awaits (and clears) the checks `expectThrows` deferred; rejects with the first that failed. */
export async function settleDeferredChecks(): Promise<void> {
  await Promise.all(deferredChecks.splice(0));
}

/**
 * Asserts that `fn` throws an Error (not a crash, not an internal panic) whose message contains
 * every fragment (strings case-sensitively, or regexps). Where the error can only arrive
 * asynchronously (the GPU in a page: see `surfaced`), the check runs when it arrives, before the
 * test ends, and the Error returned is a placeholder saying so.
 */
export function expectThrows(fn: () => unknown, ...fragments: Array<string | RegExp>): Error {
  let err: unknown;
  let later: unknown;
  try {
    later = surfaced(fn)();
  } catch (e) {
    err = e;
  }
  if (err === undefined && later instanceof Promise) {
    deferredChecks.push(later.then(() => checkThrown(undefined, fragments), (e) => checkThrown(e, fragments)));
    return new Error('expectThrows: the error arrives asynchronously (the GPU in a page); it is checked before the test ends');
  }
  return checkThrown(err, fragments);
}

/**
 * `fn` as it fails on the active backend. The GPU checks indices inside its kernels (a readback
 * per op would stall it) and reports a bad one at the next read or kiln.synchronize(), as
 * PyTorch's CUDA device asserts do; there `fn` runs in a tidy followed by a synchronize. In a
 * page (WebGPU) synchronize is asynchronous: the function then returns its Promise.
 */
export function surfaced(fn: () => unknown): () => unknown {
  if (kiln.getBackend() !== 'gpu') return fn;
  return () => {
    let sync: unknown;
    kiln.tidy(() => {
      fn();
      sync = kiln.synchronize();
    });
    return sync;
  };
}

// ---- special values ----------------------------------------------------------------------------

/** Inputs that exercise the edges of float32 math. */
export const SPECIALS: number[] = [
  0, -0, 1e-30, -1e-30, 1e-7, -1e-7, 0.5, -0.5, 1, -1, 3, -3, 10, -10, 20, -20, 44, -44, 87, -87, 88, -88, 88.5, -88.5, 88.7, -88.7,
  100, -100, 1000, -1000, 1e30, -1e30, Infinity, -Infinity, NaN,
].map(Math.fround);

/**
 * Call inside a describe/forEachBackend body: after every test, kiln.memory() must hold as many
 * tensors as before it (each test frees what it makes).
 */
export function expectEveryTestToFreeItsTensors(): void {
  let start = 0;
  beforeEach(() => {
    start = kiln.memory().numTensors;
  });
  afterEach(() => {
    expect(kiln.memory().numTensors, 'every test frees what it makes').toBe(start);
  });
}
