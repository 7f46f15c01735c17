/**
 * The fuzzer's 'rules' mode: properties that valid inputs must satisfy, so that silent wrong
 * results fail as surely as crashes. Each rule generates valid inputs (random shapes including
 * empty ones, broadcasting pairs, strided views) and checks what the op documents: the result's
 * shape and dtype, no NaN from finite inputs where the op is total, and the values against a plain
 * JS reference (exactly where the op only moves data or rounds once, else within a tolerance).
 */
import fc from 'fast-check';
import * as kiln from '../../ts/index.js';
import type { Tensor } from '../../ts/index.js';
import { dim, forEachIndex, materialize, shapeOf, stridesOf, tensorOf, type TensorSpec } from './arbitraries.js';

/** What a case made and the runner frees afterwards: tensors and modules. */
export type Made = Array<{ dispose(): void }>;

export interface Rule<T> {
  name: string;
  input: fc.Arbitrary<T>;
  /** Runs the op on `input` (tensors and modules go in `made`, freed by the caller); throws on a violation. */
  check(input: T, made: Made): void;
}

class Violation extends Error {}
const fail = (what: string): never => {
  throw new Violation(what);
};

const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);
const f = Math.fround;

function expectShape(op: string, t: Tensor, shape: number[], dtype: string): void {
  if (t.dtype !== dtype || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    fail(`${op}: got ${t.dtype} [${t.shape.join(', ')}], the rule says ${dtype} [${shape.join(', ')}]`);
  }
}

/** got ≈ want: both NaN, equal (Infinity included), or within atol + rtol·|want|. */
function close(got: number, want: number, atol: number, rtol: number): boolean {
  if (Number.isNaN(want)) return Number.isNaN(got);
  if (!Number.isFinite(want)) return got === want;
  return Math.abs(got - want) <= atol + rtol * Math.abs(want);
}

function expectValues(op: string, t: Tensor, want: ArrayLike<number>, atol = 0, rtol = 0): void {
  const got = t.dataSync();
  if (got.length !== want.length) fail(`${op}: ${got.length} elements, expected ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    if (!close(got[i], want[i], atol, rtol)) fail(`${op}: element ${i} is ${got[i]}, expected ${want[i]}`);
  }
}

function expectFinite(op: string, t: Tensor): void {
  const bad = Array.from(t.dataSync()).findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) fail(`${op}: element ${bad} is ${t.dataSync()[bad]} although every input was finite`);
}

/** NumPy broadcasting of two shapes. */
function broadcastShape(a: number[], b: number[]): number[] {
  const r = Math.max(a.length, b.length);
  return Array.from({ length: r }, (_, i) => {
    const x = a[a.length - r + i] ?? 1;
    const y = b[b.length - r + i] ?? 1;
    return x === 1 ? y : x;
  });
}

/** The element of `values` (shape `shape`) that broadcasts to index `idx` of a larger shape. */
function broadcastAt(values: number[], shape: number[], idx: number[]): number {
  const st = stridesOf(shape);
  const off = idx.length - shape.length;
  let flat = 0;
  for (let d = 0; d < shape.length; d++) flat += (shape[d] === 1 ? 0 : idx[d + off]) * st[d];
  return values[flat];
}

/** Two shapes that broadcast: the second drops leading dims and sets some dims to 1. */
const broadcastPair = shapeOf(0, 4).chain((a) =>
  fc.tuple(fc.constant(a), fc.integer({ min: 0, max: a.length }), fc.array(fc.boolean(), { minLength: a.length, maxLength: a.length })).map(([s, drop, ones]) => {
    const b = s.slice(drop).map((d, i) => (ones[i + drop] ? 1 : d));
    return ones[0] ? ([b, s] as [number[], number[]]) : ([s, b] as [number[], number[]]);
  }),
);

const floatPair = broadcastPair.chain(([a, b]) => fc.tuple(tensorOf(a, 'float32'), tensorOf(b, 'float32')));

const BINARY: Record<string, (a: number, b: number) => number> = {
  add: (a, b) => f(a + b),
  sub: (a, b) => f(a - b),
  mul: (a, b) => f(a * b),
  div: (a, b) => f(a / b),
  maximum: (a, b) => Math.max(a, b),
  minimum: (a, b) => Math.min(a, b),
};
const COMPARE: Record<string, (a: number, b: number) => boolean> = {
  equal: (a, b) => a === b,
  notEqual: (a, b) => a !== b,
  less: (a, b) => a < b,
  lessEqual: (a, b) => a <= b,
  greater: (a, b) => a > b,
  greaterEqual: (a, b) => a >= b,
};

/** Unary ops total on finite input, with their JS reference (float64; compared with a tolerance). */
const UNARY: Record<string, (x: number) => number> = {
  neg: (x) => -x,
  abs: Math.abs,
  relu: (x) => Math.max(x, 0),
  square: (x) => x * x,
  exp: Math.exp,
  sin: Math.sin,
  cos: Math.cos,
  tanh: Math.tanh,
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  softplus: (x) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x))),
  gelu: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
};

/** erf (Abramowitz-Stegun 7.1.26 is too coarse for 1e-5; this series/continued fraction is not needed at 1e-4). */
function erf(x: number): number {
  // Numerical Recipes erfc via Chebyshev, relative error < 1.2e-7.
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? 1 - r : r - 1;
}

/** A random subset of the axes of `rank`, each possibly negative, or undefined (all axes). */
function axesOf(rank: number): fc.Arbitrary<number[] | undefined> {
  if (rank === 0) return fc.constant(undefined);
  return fc.option(fc.subarray([...Array(rank).keys()], { minLength: 1 }).chain((axes) => fc.tuple(...axes.map((a) => fc.constantFrom(a, a - rank)))), { nil: undefined });
}

/** Reference reductions over the rows that `axes` select, in float64. */
function reduceRef(values: number[], shape: number[], axes: number[] | undefined, fn: (row: number[]) => number): { shape: number[]; keptShape: number[]; out: number[] } {
  const rank = shape.length;
  const reduced = new Set((axes ?? [...Array(rank).keys()]).map((a) => (a < 0 ? a + rank : a)));
  const keptShape = shape.map((d, i) => (reduced.has(i) ? 1 : d));
  const outShape = shape.filter((_, i) => !reduced.has(i));
  const rows: number[][] = Array.from({ length: numel(outShape) }, () => []);
  const st = stridesOf(outShape);
  forEachIndex(shape, (idx, flat) => {
    const o = idx.filter((_, i) => !reduced.has(i));
    rows[o.reduce((a, v, k) => a + v * st[k], 0)].push(values[flat]);
  });
  return { shape: outShape, keptShape, out: rows.map(fn) };
}

const sum64 = (r: number[]) => r.reduce((a, b) => a + b, 0);
const REDUCE: Record<string, { ref: (row: number[]) => number; emptyThrows?: boolean }> = {
  sum: { ref: sum64 },
  mean: { ref: (r) => sum64(r) / r.length },
  max: { ref: (r) => Math.max(...r), emptyThrows: true },
  min: { ref: (r) => Math.min(...r), emptyThrows: true },
  variance: { ref: (r) => { const m = sum64(r) / r.length; return sum64(r.map((v) => (v - m) ** 2)) / r.length; } },
  logSumExp: { ref: (r) => { if (r.length === 0) return -Infinity; const m = Math.max(...r); return m + Math.log(sum64(r.map((v) => Math.exp(v - m)))); } },
};

function withViews<T extends TensorSpec>(s: T, made: Made): Tensor {
  return materialize(s, made);
}

/**
 * A rule for broadcasting binary ops: the result has the broadcast shape and `dtype`, and each
 * element is the reference applied to the two float32 inputs it broadcasts from.
 */
function broadcastRule(name: string, table: Record<string, (a: number, b: number) => number | boolean>, dtype: 'float32' | 'bool'): Rule<[string, [TensorSpec, TensorSpec]]> {
  return {
    name,
    input: fc.tuple(fc.constantFrom(...Object.keys(table)), floatPair),
    check([op, [a, b]], made) {
      const out = (kiln as unknown as Record<string, (x: Tensor, y: Tensor) => Tensor>)[op](withViews(a, made), withViews(b, made));
      made.push(out);
      const shape = broadcastShape(a.shape, b.shape);
      expectShape(op, out, shape, dtype);
      const want: number[] = [];
      forEachIndex(shape, (idx) => want.push(Number(table[op](broadcastAt(a.values.map(f), a.shape, idx), broadcastAt(b.values.map(f), b.shape, idx)))));
      // div may multiply by a reciprocal: one more rounding.
      expectValues(op, out, want, 0, op === 'div' ? 2 ** -22 : 0);
    },
  };
}

export const RULES: Array<Rule<any>> = [
  broadcastRule('binary arithmetic: broadcast shape, float32, values as IEEE float32 (exact)', BINARY, 'float32'),
  broadcastRule('comparisons: broadcast shape, bool, exact', COMPARE, 'bool'),
  {
    name: 'unary ops total on finite input: same shape, float32, finite, values within 1e-5',
    input: fc.tuple(fc.constantFrom(...Object.keys(UNARY)), shapeOf().chain((s) => tensorOf(s, 'float32'))),
    check([op, x]: [string, TensorSpec], made) {
      const out = (kiln as unknown as Record<string, (x: Tensor) => Tensor>)[op](withViews(x, made));
      made.push(out);
      expectShape(op, out, x.shape, 'float32');
      const want = x.values.map((v) => f(UNARY[op](f(v))));
      // exp and square of 100 overflow float32 to Infinity, as they should; everything else is finite.
      if (op !== 'exp' && op !== 'square') expectFinite(op, out);
      expectValues(op, out, want, 1e-5, 1e-5);
    },
  },
  {
    name: 'reductions over random axes: shape rule (keepDims), values within tolerance, empty axes as PyTorch',
    input: fc.tuple(fc.constantFrom(...Object.keys(REDUCE)), shapeOf(), fc.boolean()).chain(([op, s, keepDims]) => fc.tuple(fc.constant(op), tensorOf(s, 'float32'), axesOf(s.length), fc.constant(keepDims))),
    check([op, x, axes, keepDims]: [string, TensorSpec, number[] | undefined, boolean], made) {
      const ref = reduceRef(x.values.map(f), x.shape, axes, REDUCE[op].ref);
      const rowLength = numel(x.shape) / Math.max(1, numel(ref.shape));
      const call = () => (kiln as unknown as Record<string, (x: Tensor, a?: number[], k?: boolean) => Tensor>)[op](withViews(x, made), axes, keepDims);
      if (REDUCE[op].emptyThrows && numel(x.shape) === 0 && numel(ref.shape) > 0) {
        let threw = false;
        try {
          made.push(call());
        } catch (e) {
          threw = e instanceof Error && e.message.startsWith(`${op}:`);
        }
        if (!threw) fail(`${op} over an empty axis of [${x.shape.join(', ')}] must throw an Error naming ${op}`);
        return;
      }
      const out = call();
      made.push(out);
      expectShape(op, out, keepDims ? ref.keptShape : ref.shape, 'float32');
      const scale = Math.max(1, ...x.values.map(Math.abs));
      const atol = op === 'variance' ? 1e-5 * scale * scale : 1e-5 * scale * Math.max(1, rowLength);
      expectValues(op, out, ref.out, atol, 1e-5);
    },
  },
  {
    name: 'argmax / argmin: int32, shape rule, the first extreme',
    input: fc.tuple(fc.constantFrom('argmax', 'argmin'), shapeOf(1, 4).filter((s) => numel(s) > 0)).chain(([op, s]) => fc.tuple(fc.constant(op), tensorOf(s, 'float32'), fc.option(fc.integer({ min: -s.length, max: s.length - 1 }), { nil: undefined }))),
    check([op, x, axis]: [string, TensorSpec, number | undefined], made) {
      const out = (kiln as unknown as Record<string, (x: Tensor, a?: number) => Tensor>)[op](withViews(x, made), axis);
      made.push(out);
      const pick = (r: number[]) => {
        let best = 0;
        for (let i = 1; i < r.length; i++) if (op === 'argmax' ? r[i] > r[best] : r[i] < r[best]) best = i;
        return best;
      };
      const ref = reduceRef(x.values.map(f), x.shape, axis === undefined ? undefined : [axis], pick);
      expectShape(op, out, ref.shape, 'int32');
      expectValues(op, out, ref.out);
    },
  },
  {
    name: 'matmul: [..., m, k] x [..., k, n] (batch broadcast, zero sizes): shape, finite, values within tolerance',
    input: fc.tuple(dim, dim, dim, fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }), fc.boolean()).chain(([m, k, n, batch, broadcastB]) =>
      fc.tuple(tensorOf([...batch, m, k], 'float32'), tensorOf([...(broadcastB ? [] : batch), k, n], 'float32'))),
    check([a, b]: [TensorSpec, TensorSpec], made) {
      const out = kiln.matmul(withViews(a, made), withViews(b, made));
      made.push(out);
      const [m, k] = a.shape.slice(-2);
      const n = b.shape[b.shape.length - 1];
      const batch = a.shape.slice(0, -2);
      expectShape('matmul', out, [...batch, m, n], 'float32');
      expectFinite('matmul', out);
      const want: number[] = [];
      // b without batch dims is shared by every batch entry.
      const bStride = b.shape.length === 2 ? 0 : k * n;
      for (let p = 0; p < numel(batch); p++) {
        for (let i = 0; i < m; i++) {
          for (let j = 0; j < n; j++) {
            let s = 0;
            for (let q = 0; q < k; q++) s += f(a.values[p * m * k + i * k + q]) * f(b.values[p * bStride + q * n + j]);
            want.push(s);
          }
        }
      }
      const maxA = Math.max(1, ...a.values.map(Math.abs));
      const maxB = Math.max(1, ...b.values.map(Math.abs));
      expectValues('matmul', out, want, 1e-6 * Math.max(1, k) * maxA * maxB, 1e-5);
    },
  },
  {
    name: 'views and data movement (reshape, permute, slice, expand, concat, contiguous): shape and exact values',
    input: shapeOf(1, 4).chain((s) => fc.tuple(tensorOf(s, 'float32'), fc.shuffledSubarray([...s.keys()], { minLength: s.length, maxLength: s.length }), fc.tuple(...s.map((d) => fc.integer({ min: 0, max: d }).chain((b) => fc.tuple(fc.constant(b), fc.integer({ min: 0, max: d - b }))))))),
    check([x, perm, ranges]: [TensorSpec, number[], Array<[number, number]>], made) {
      const t = withViews(x, made);
      const keep = (y: Tensor) => (made.push(y), y);
      const vals = x.values.map(f);
      // reshape to 1-D and back
      const flat = keep(kiln.reshape(t, [-1]));
      expectShape('reshape', flat, [numel(x.shape)], 'float32');
      expectValues('reshape', flat, vals);
      // permute: element at idx of the result is x at idx permuted back
      const p = keep(kiln.permute(t, perm));
      const pShape = perm.map((d) => x.shape[d]);
      expectShape('permute', p, pShape, 'float32');
      const st = stridesOf(x.shape);
      const pWant: number[] = [];
      forEachIndex(pShape, (idx) => pWant.push(vals[idx.reduce((a, v, k) => a + v * st[perm[k]], 0)]));
      expectValues('permute', keep(kiln.contiguous(p)), pWant);
      // slice
      const sl = keep(kiln.slice(t, ranges.map((r) => r[0]), ranges.map((r) => r[1])));
      const sShape = ranges.map((r) => r[1]);
      expectShape('slice', sl, sShape, 'float32');
      const sWant: number[] = [];
      forEachIndex(sShape, (idx) => sWant.push(vals[idx.reduce((a, v, k) => a + (v + ranges[k][0]) * st[k], 0)]));
      expectValues('slice', sl, sWant);
      // concat with itself along axis 0
      const c = keep(kiln.concat([t, t], 0));
      expectShape('concat', c, [x.shape[0] * 2, ...x.shape.slice(1)], 'float32');
      expectValues('concat', c, [...vals, ...vals]);
      // expand a new leading dim of 2
      const e = keep(kiln.expand(t, [2, ...x.shape]));
      expectShape('expand', e, [2, ...x.shape], 'float32');
      expectValues('expand', e, [...vals, ...vals]);
    },
  },
  {
    name: 'softmax / logSoftmax along a random axis: same shape, rows sum to 1, finite',
    input: shapeOf(1, 4).chain((s) => fc.tuple(fc.constantFrom('softmax', 'logSoftmax'), tensorOf(s, 'float32'), fc.integer({ min: -s.length, max: s.length - 1 }))),
    check([op, x, axis]: [string, TensorSpec, number], made) {
      const out = (kiln as unknown as Record<string, (x: Tensor, a: number) => Tensor>)[op](withViews(x, made), axis);
      made.push(out);
      expectShape(op, out, x.shape, 'float32');
      expectFinite(op, out);
      const ax = axis < 0 ? axis + x.shape.length : axis;
      const lse = reduceRef(x.values.map(f), x.shape, [ax], REDUCE.logSumExp.ref);
      const st = stridesOf(lse.shape);
      const want: number[] = [];
      forEachIndex(x.shape, (idx, flat) => {
        const row = lse.out[idx.filter((_, i) => i !== ax).reduce((a, v, k) => a + v * st[k], 0)];
        const logp = f(x.values[flat]) - row;
        want.push(op === 'softmax' ? Math.exp(logp) : logp);
      });
      expectValues(op, out, want, 1e-5, 1e-5);
    },
  },
  {
    name: 'cast: float32 -> int32 truncates and saturates (NaN -> 0), -> bool is v != 0; int32 -> float32 rounds once',
    input: shapeOf().chain((s) => fc.tuple(tensorOf(s, 'float32', true), tensorOf(s, 'int32'))),
    check([x, n]: [TensorSpec, TensorSpec], made) {
      const xt = withViews(x, made);
      const toInt = kiln.cast(xt, 'int32');
      made.push(toInt);
      expectShape('cast', toInt, x.shape, 'int32');
      const sat = (v: number) => (Number.isNaN(v) ? 0 : Math.max(-2147483648, Math.min(2147483647, Math.trunc(v))));
      expectValues('cast to int32', toInt, x.values.map((v) => sat(f(v))));
      const toBool = kiln.cast(xt, 'bool');
      made.push(toBool);
      expectShape('cast', toBool, x.shape, 'bool');
      expectValues('cast to bool', toBool, x.values.map((v) => (f(v) !== 0 ? 1 : 0)));
      const back = kiln.cast(withViews(n, made), 'float32');
      made.push(back);
      expectValues('cast to float32', back, n.values.map(f));
    },
  },
  {
    name: 'gather with valid int32 indices: [...pre, ...idx, ...post], exact values',
    input: shapeOf(1, 3).filter((s) => s.every((d) => d > 0)).chain((s) =>
      fc.tuple(tensorOf(s, 'float32'), fc.integer({ min: 0, max: s.length - 1 })).chain(([x, axis]) =>
        fc.tuple(fc.constant(x), fc.constant(axis), shapeOf(0, 2).chain((is) => fc.record({ shape: fc.constant(is), dtype: fc.constant('int32' as const), values: fc.array(fc.integer({ min: 0, max: s[axis] - 1 }), { minLength: numel(is), maxLength: numel(is) }), view: fc.constant('plain' as const) }))))),
    check([x, axis, ids]: [TensorSpec, number, TensorSpec], made) {
      const out = kiln.gather(withViews(x, made), withViews(ids, made), axis);
      made.push(out);
      const shape = [...x.shape.slice(0, axis), ...ids.shape, ...x.shape.slice(axis + 1)];
      expectShape('gather', out, shape, 'float32');
      const st = stridesOf(x.shape);
      const want: number[] = [];
      forEachIndex(shape, (idx) => {
        const pre = idx.slice(0, axis);
        const which = ids.values[idx.slice(axis, axis + ids.shape.length).reduce((a, v, k) => a + v * stridesOf(ids.shape)[k], 0)];
        const post = idx.slice(axis + ids.shape.length);
        want.push(f(x.values[[...pre, which, ...post].reduce((a, v, k) => a + v * st[k], 0)]));
      });
      expectValues('gather', out, want);
    },
  },
  ...layerRules(),
];

/** Layers with random valid configurations: the documented output shape, finite output for finite input. */
function layerRules(): Array<Rule<any>> {
  const layer = <C>(name: string, config: fc.Arbitrary<C>, run: (c: C, made: Made) => { out: Tensor; shape: number[] }): Rule<C> => ({
    name: `nn.${name}: output shape and finite values`,
    input: config,
    check(c, made) {
      const { out, shape } = run(c, made);
      made.push(out);
      expectShape(name, out, shape, 'float32');
      expectFinite(name, out);
    },
  });
  const input = (shape: number[], made: Made) => materialize({ shape, dtype: 'float32', values: Array.from({ length: numel(shape) }, (_, i) => Math.sin(i + 1)), view: 'plain' }, made);
  const own = <M extends kiln.nn.Module<any, any>>(m: M, made: Made) => {
    made.push(m);
    return m;
  };
  const small = fc.integer({ min: 1, max: 5 });
  return [
    layer('Linear', fc.tuple(small, small, shapeOf(0, 2), fc.boolean()), ([i, o, lead, bias], made) => {
      const m = own(new kiln.nn.Linear(i, o, { seed: 1, bias }), made);
      return { out: m.forward(input([...lead, i], made)), shape: [...lead, o] };
    }),
    layer('Conv2d', fc.tuple(small, small, fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 3, max: 7 }), fc.integer({ min: 3, max: 7 })),
      ([cin, cout, k, stride, padding, n, h, w], made) => {
        const m = own(new kiln.nn.Conv2d(cin, cout, k, { seed: 1, stride, padding }), made);
        const ho = Math.floor((h + 2 * padding - k) / stride) + 1;
        const wo = Math.floor((w + 2 * padding - k) / stride) + 1;
        return { out: m.forward(input([n, cin, h, w], made)), shape: [n, cout, ho, wo] };
      }),
    layer('Embedding', fc.tuple(small, small, shapeOf(0, 2)).chain(([num, d, s]) => fc.tuple(fc.constant(num), fc.constant(d), fc.constant(s), fc.array(fc.integer({ min: 0, max: num - 1 }), { minLength: numel(s), maxLength: numel(s) }))),
      ([num, d, s, ids], made) => {
        const m = own(new kiln.nn.Embedding(num, d, { seed: 1 }), made);
        const t = kiln.tensor(ids, s, 'int32');
        made.push(t);
        return { out: m.forward(t), shape: [...s, d] };
      }),
    layer('LayerNorm', fc.tuple(shapeOf(1, 3).filter((s) => s.every((d) => d > 0)), small), ([s], made) => {
      const m = own(new kiln.nn.LayerNorm(s[s.length - 1]), made);
      return { out: m.forward(input(s, made)), shape: s };
    }),
    layer('MaxPool2d / AvgPool2d', fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 2 }), small, fc.integer({ min: 3, max: 7 }), fc.integer({ min: 3, max: 7 })),
      ([isMax, k, n, c, h, w], made) => {
        const m = isMax ? new kiln.nn.MaxPool2d(k) : new kiln.nn.AvgPool2d(k);
        return { out: m.forward(input([n, c, h, w], made)), shape: [n, c, Math.floor((h - k) / k) + 1, Math.floor((w - k) / k) + 1] };
      }),
    layer('RNN / LSTM / GRU', fc.tuple(fc.constantFrom('RNN', 'LSTM', 'GRU'), small, small, small, small), ([kind, inSize, hidden, batch, steps], made) => {
      const Ctor = (kiln.nn as unknown as Record<string, new (i: number, h: number, o: object) => kiln.nn.Module<[Tensor], [Tensor, unknown]>>)[kind];
      const m = own(new Ctor(inSize, hidden, { seed: 1, batchFirst: true }), made);
      const [out, state] = m.forward(input([batch, steps, inSize], made));
      made.push(...[state].flat(2).filter((t): t is Tensor => t instanceof kiln.Tensor));
      return { out, shape: [batch, steps, hidden] };
    }),
    layer('MultiHeadAttention', fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), small, small), ([heads, perHead, batch, steps], made) => {
      const d = heads * perHead;
      const m = own(new kiln.nn.MultiHeadAttention(d, heads, { seed: 1 }), made);
      return { out: m.forward(input([batch, steps, d], made)), shape: [batch, steps, d] };
    }),
  ];
}
