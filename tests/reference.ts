/**
 * Plain-JS reference implementations, written for obviousness rather than speed: every op walks
 * the output index by index in float64. Kiln's results are compared against these (and against
 * tfjs where tfjs has the op). Nothing here shares code with Kiln.
 */

/** A dense row-major array: `data.length === sizeOf(shape)`. */
export interface ND {
  shape: number[];
  data: number[];
}

export function nd(shape: number[], data: ArrayLike<number>): ND {
  if (data.length !== sizeOf(shape)) throw new Error(`reference: ${data.length} values for shape [${shape}]`);
  return { shape: [...shape], data: Array.from(data) };
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** Flat index -> multi-index. */
export function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return idx;
}

/** Multi-index -> flat index. */
export function ravel(idx: readonly number[], shape: readonly number[]): number {
  let i = 0;
  for (let d = 0; d < shape.length; d++) i = i * shape[d] + idx[d];
  return i;
}

function normAxis(axis: number, rank: number): number {
  if (axis < -rank || axis >= rank) throw new Error(`reference: axis ${axis} out of range for rank ${rank}`);
  return axis < 0 ? axis + rank : axis;
}

/** Sorted, de-duplicated axes; undefined or [] mean all axes. */
export function normAxes(axes: number | number[] | undefined, rank: number): number[] {
  if (axes === undefined) return [...Array(rank).keys()];
  const list = Array.isArray(axes) ? axes : [axes];
  if (list.length === 0) return [...Array(rank).keys()];
  return [...new Set(list.map((a) => normAxis(a, rank)))].sort((a, b) => a - b);
}

// ---- broadcasting ------------------------------------------------------------------------------

/** NumPy broadcasting; throws on incompatible shapes. */
export function broadcastShapes(...shapes: number[][]): number[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const j = i - (rank - s.length);
      const v = j >= 0 ? s[j] : 1;
      if (v === 1) continue;
      if (d !== 1 && d !== v) throw new Error(`reference: cannot broadcast [${shapes.map((x) => `[${x}]`).join(', ')}]`);
      d = v;
    }
    out.push(d);
  }
  return out;
}

/** Materializes `x` broadcast to `shape`. */
export function broadcastTo(x: ND, shape: number[]): ND {
  const offset = shape.length - x.shape.length;
  const data = new Array<number>(sizeOf(shape));
  for (let i = 0; i < data.length; i++) {
    const idx = unravel(i, shape);
    const src = x.shape.map((d, k) => (d === 1 ? 0 : idx[k + offset]));
    data[i] = x.data[ravel(src, x.shape)];
  }
  return { shape: [...shape], data };
}

export function map(x: ND, f: (v: number) => number): ND {
  return { shape: [...x.shape], data: x.data.map(f) };
}

export function zip(a: ND, b: ND, f: (x: number, y: number) => number): ND {
  const shape = broadcastShapes(a.shape, b.shape);
  const A = broadcastTo(a, shape);
  const B = broadcastTo(b, shape);
  return { shape, data: A.data.map((v, i) => f(v, B.data[i])) };
}

export function where(c: ND, a: ND, b: ND): ND {
  const shape = broadcastShapes(c.shape, a.shape, b.shape);
  const C = broadcastTo(c, shape);
  const A = broadcastTo(a, shape);
  const B = broadcastTo(b, shape);
  return { shape, data: C.data.map((v, i) => (v !== 0 ? A.data[i] : B.data[i])) };
}

// ---- scalar functions (float64) ----------------------------------------------------------------

/** erf in float64: Taylor series near 0, continued fraction for erfc further out (|err| ~1e-15). */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (Math.abs(x) < 2.5) {
    // erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
    let term = x;
    let sum = x;
    for (let n = 1; n < 200; n++) {
      term *= (-x * x) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  return x > 0 ? 1 - erfc(x) : erfc(-x) - 1;
}

/** erfc in float64, accurate in the tails (no cancellation for large |x|). */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return 2 - erfc(-x);
  if (x < 2.5) return 1 - erf(x);
  if (x === Infinity) return 0;
  // Continued fraction: erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...)))))
  let f = x;
  for (let k = 120; k >= 1; k--) f = x + k / 2 / f;
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

/** Standard normal CDF. */
export const Phi = (x: number): number => 0.5 * erfc(-x / Math.SQRT2);

/** GELU, exact form x·Φ(x), with its limits at ±inf (0 at -inf). */
export function gelu(x: number): number {
  if (x === -Infinity) return 0;
  return x * Phi(x);
}

export function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

export function softplus(x: number): number {
  if (Number.isNaN(x)) return NaN;
  return Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
}

/** x / (1 + |x|), ±1 at ±inf. */
export function softsign(x: number): number {
  if (!Number.isFinite(x) && !Number.isNaN(x)) return Math.sign(x);
  return x / (1 + Math.abs(x));
}

/** x·tanh(softplus(x)) in double precision, 0 at -inf (the limit). */
export function mish(x: number): number {
  if (x === -Infinity) return 0;
  return x * Math.tanh(softplus(x));
}

export const relu = (x: number): number => (Number.isNaN(x) ? NaN : x > 0 ? x : 0);
export const leakyRelu = (x: number, alpha: number): number => (x > 0 ? x : alpha * x);
export const elu = (x: number, alpha: number): number => (x > 0 ? x : alpha * Math.expm1(x));

/** max/min that propagate NaN (Math.max already does). */
export const maximum = (a: number, b: number): number => Math.max(a, b);
export const minimum = (a: number, b: number): number => Math.min(a, b);

// ---- reductions --------------------------------------------------------------------------------

/**
 * Reduces over `axes` (undefined/[] = all): each output element gets the list of input values
 * along the reduced axes, in row-major order, and `f` turns the list into one number.
 */
export function reduce(x: ND, axes: number | number[] | undefined, keepDims: boolean, f: (vals: number[]) => number): ND {
  const rank = x.shape.length;
  const red = normAxes(axes, rank);
  const kept = [...Array(rank).keys()].filter((d) => !red.includes(d));
  const keptShape = kept.map((d) => x.shape[d]);
  const buckets: number[][] = Array.from({ length: sizeOf(keptShape) }, () => []);
  for (let i = 0; i < x.data.length; i++) {
    const idx = unravel(i, x.shape);
    buckets[ravel(kept.map((d) => idx[d]), keptShape)].push(x.data[i]);
  }
  const shape = keepDims ? x.shape.map((d, k) => (red.includes(k) ? 1 : d)) : keptShape;
  return { shape, data: buckets.map(f) };
}

export const sum = (v: number[]): number => v.reduce((s, x) => s + x, 0);
export const mean = (v: number[]): number => sum(v) / v.length;
export const max = (v: number[]): number => v.reduce((m, x) => (Number.isNaN(m) || Number.isNaN(x) ? NaN : x > m ? x : m), -Infinity);
export const min = (v: number[]): number => v.reduce((m, x) => (Number.isNaN(m) || Number.isNaN(x) ? NaN : x < m ? x : m), Infinity);
export const variance = (correction: number) => (v: number[]): number => {
  const m = mean(v);
  return sum(v.map((x) => (x - m) * (x - m))) / (v.length - correction);
};
export function logSumExp(v: number[]): number {
  const m = max(v);
  if (!Number.isFinite(m)) return m;
  return m + Math.log(sum(v.map((x) => Math.exp(x - m))));
}
/** Index of the first maximum. */
export const argmax = (v: number[]): number => v.reduce((best, x, i) => (x > v[best] ? i : best), 0);
/** Index of the first minimum. */
export const argmin = (v: number[]): number => v.reduce((best, x, i) => (x < v[best] ? i : best), 0);

/** softmax (or logSoftmax) along `axis`. */
export function softmax(x: ND, axis: number, log = false): ND {
  const a = normAxis(axis, x.shape.length);
  const out = new Array<number>(x.data.length);
  const n = x.shape[a];
  const stride = stridesOf(x.shape)[a];
  for (let i = 0; i < x.data.length; i++) {
    const idx = unravel(i, x.shape);
    if (idx[a] !== 0) continue;
    const pos = Array.from({ length: n }, (_, j) => i + j * stride);
    const vals = pos.map((p) => x.data[p]);
    const lse = logSumExp(vals);
    pos.forEach((p, j) => (out[p] = log ? vals[j] - lse : Math.exp(vals[j] - lse)));
  }
  return { shape: [...x.shape], data: out };
}

// ---- linear algebra ----------------------------------------------------------------------------

/** a @ b with NumPy semantics: vectors promoted and dropped, batch dims broadcast. */
export function matmul(a: ND, b: ND, transposeA = false, transposeB = false): ND {
  const aVec = a.shape.length === 1;
  const bVec = b.shape.length === 1;
  let A = aVec ? { shape: [1, a.shape[0]], data: a.data } : transposeA ? swapLast2(a) : a;
  let B = bVec ? { shape: [b.shape[0], 1], data: b.data } : transposeB ? swapLast2(b) : b;
  const [m, k] = A.shape.slice(-2);
  const [k2, n] = B.shape.slice(-2);
  if (k !== k2) throw new Error(`reference matmul: K ${k} vs ${k2}`);
  const batch = broadcastShapes(A.shape.slice(0, -2), B.shape.slice(0, -2));
  A = broadcastTo(A, [...batch, m, k]);
  B = broadcastTo(B, [...batch, k, n]);
  const nb = sizeOf(batch);
  const data = new Array<number>(nb * m * n).fill(0);
  for (let bi = 0; bi < nb; bi++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += A.data[bi * m * k + i * k + p] * B.data[bi * k * n + p * n + j];
        data[bi * m * n + i * n + j] = s;
      }
    }
  }
  let shape = [...batch, m, n];
  if (aVec) shape = [...batch, n];
  if (bVec) shape = aVec ? [...batch] : [...batch, m];
  return { shape, data };
}

function swapLast2(x: ND): ND {
  const r = x.shape.length;
  const perm = [...Array(r).keys()];
  [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
  return permute(x, perm);
}

// ---- shape ops ---------------------------------------------------------------------------------

/** Output dim i is input dim perm[i]. */
export function permute(x: ND, perm: number[]): ND {
  const shape = perm.map((p) => x.shape[p]);
  const data = new Array<number>(x.data.length);
  for (let i = 0; i < data.length; i++) {
    const idx = unravel(i, shape);
    const src = new Array<number>(x.shape.length);
    perm.forEach((p, k) => (src[p] = idx[k]));
    data[i] = x.data[ravel(src, x.shape)];
  }
  return { shape, data };
}

export function transpose(x: ND): ND {
  return permute(x, [...Array(x.shape.length).keys()].reverse());
}

export function slice(x: ND, begin: number[], size: number[]): ND {
  const shape = size.map((s, d) => (s < 0 ? x.shape[d] - begin[d] : s));
  const data = new Array<number>(sizeOf(shape));
  for (let i = 0; i < data.length; i++) {
    const idx = unravel(i, shape);
    data[i] = x.data[ravel(idx.map((v, d) => v + begin[d]), x.shape)];
  }
  return { shape, data };
}

export function concat(xs: ND[], axis: number): ND {
  const a = normAxis(axis, xs[0].shape.length);
  const shape = [...xs[0].shape];
  shape[a] = xs.reduce((s, x) => s + x.shape[a], 0);
  const data = new Array<number>(sizeOf(shape));
  for (let i = 0; i < data.length; i++) {
    const idx = unravel(i, shape);
    let j = idx[a];
    let t = 0;
    while (j >= xs[t].shape[a]) j -= xs[t++].shape[a];
    const src = [...idx];
    src[a] = j;
    data[i] = xs[t].data[ravel(src, xs[t].shape)];
  }
  return { shape, data };
}

export function stack(xs: ND[], axis: number): ND {
  const a = normAxis(axis, xs[0].shape.length + 1);
  return concat(
    xs.map((x) => ({ shape: [...x.shape.slice(0, a), 1, ...x.shape.slice(a)], data: x.data })),
    a,
  );
}

/** x [...pre, D, ...post], indices [...idx] -> [...pre, ...idx, ...post]. */
export function gather(x: ND, indices: ND, axis: number): ND {
  const a = normAxis(axis, x.shape.length);
  const shape = [...x.shape.slice(0, a), ...indices.shape, ...x.shape.slice(a + 1)];
  const ni = indices.shape.length;
  const data = new Array<number>(sizeOf(shape));
  for (let i = 0; i < data.length; i++) {
    const idx = unravel(i, shape);
    const which = indices.data[ravel(idx.slice(a, a + ni), indices.shape)];
    data[i] = x.data[ravel([...idx.slice(0, a), which, ...idx.slice(a + ni)], x.shape)];
  }
  return { shape, data };
}

/** base + updates summed into the slots `indices` name along `axis` (the adjoint of gather). */
export function scatterAdd(base: ND, indices: ND, updates: ND, axis: number): ND {
  const a = normAxis(axis, base.shape.length);
  const ni = indices.shape.length;
  const data = [...base.data];
  for (let i = 0; i < updates.data.length; i++) {
    const idx = unravel(i, updates.shape);
    const which = indices.data[ravel(idx.slice(a, a + ni), indices.shape)];
    data[ravel([...idx.slice(0, a), which, ...idx.slice(a + ni)], base.shape)] += updates.data[i];
  }
  return { shape: [...base.shape], data };
}

export function oneHot(indices: ND, depth: number, on = 1, off = 0): ND {
  const data: number[] = [];
  for (const v of indices.data) for (let j = 0; j < depth; j++) data.push(j === v ? on : off);
  return { shape: [...indices.shape, depth], data };
}

export function pad(x: ND, paddings: Array<[number, number]>, value = 0): ND {
  const shape = x.shape.map((d, k) => d + paddings[k][0] + paddings[k][1]);
  const data = new Array<number>(sizeOf(shape));
  for (let i = 0; i < data.length; i++) {
    const idx = unravel(i, shape);
    const src = idx.map((v, k) => v - paddings[k][0]);
    const inside = src.every((v, k) => v >= 0 && v < x.shape[k]);
    data[i] = inside ? x.data[ravel(src, x.shape)] : value;
  }
  return { shape, data };
}

export function eye(rows: number, cols: number): ND {
  const data = new Array<number>(rows * cols).fill(0);
  for (let i = 0; i < Math.min(rows, cols); i++) data[i * cols + i] = 1;
  return { shape: [rows, cols], data };
}
