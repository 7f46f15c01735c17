/**
 * Splitting a data set into train / validation / test index sets, and gathering the rows those
 * indices name into contiguous Float32Arrays.
 */

import { Random, resolveSeed, type Seed } from './random.js';

/** Options of `trainValTestSplit`. */
export interface SplitOptions {
  /** Fractions for train, validation and test; they must sum to 1. Default [0.7, 0.15, 0.15]. */
  ratios?: readonly [number, number, number];
  /**
   * Keep each class's share the same in every split. `true` uses the labels passed as the first
   * argument; or pass the labels here. Default false.
   */
  stratify?: boolean | ArrayLike<number>;
  /** Same seed, same split. Omitted: a random one. */
  seed?: Seed;
}

/** The three index sets `trainValTestSplit` returns. */
export interface Split {
  /** Sample indices, ascending. The three sets are disjoint and together cover 0..n-1. */
  train: Int32Array;
  val: Int32Array;
  test: Int32Array;
}

/** Tolerance for float noise in n * ratio (0.07 * 100 is 7.000000000000001). */
const EPS = 1e-9;

function checkRatios(ratios: readonly number[]): number[] {
  if (!Array.isArray(ratios) || ratios.length !== 3 || !ratios.every((r) => Number.isFinite(r) && r >= 0)) {
    throw new Error(`trainValTestSplit: ratios must be three non-negative numbers [train, val, test], got ${JSON.stringify(ratios)}`);
  }
  const total = ratios[0] + ratios[1] + ratios[2];
  if (Math.abs(total - 1) > 1e-6) throw new Error(`trainValTestSplit: ratios must sum to 1, got ${JSON.stringify(ratios)} (sum ${total})`);
  return ratios.map((r) => r / total);
}

/** Integer sizes summing to n, each floor or ceil of n * ratio (the largest remainders round up). */
function largestRemainder(n: number, ratios: number[]): number[] {
  const exact = ratios.map((r) => n * r);
  const sizes = exact.map((x) => Math.floor(x + EPS));
  let left = n - sizes.reduce((a, b) => a + b, 0);
  const order = [...ratios.keys()].sort((a, b) => exact[b] - sizes[b] - (exact[a] - sizes[a]) || a - b);
  for (let i = 0; left > 0; i = (i + 1) % order.length, left--) sizes[order[i]]++;
  return sizes;
}

/**
 * Per-class split sizes: each within one sample of classSize * ratio, each class's sizes summing to
 * the class size, and each split's total exactly the unstratified size (so 70/15/15 of 60,000 is
 * 42,000 / 9,000 / 9,000, stratified or not). Classes round down first; the samples left over go,
 * class by class, to the splits still furthest below their totals. That greedy (Ryser's
 * construction of a 0-1 matrix with given row and column sums) cannot get stuck, because the
 * rounding problem always has a solution.
 */
function stratifiedSizes(classSizes: number[], ratios: number[], totals: number[]): number[][] {
  const alloc = classSizes.map((n) => ratios.map((r) => Math.floor(n * r + EPS)));
  const frac = classSizes.map((n, c) => ratios.map((r, s) => n * r - alloc[c][s]));
  const missing = totals.map((t, s) => t - alloc.reduce((sum, row) => sum + row[s], 0));
  classSizes.forEach((n, c) => {
    let left = n - alloc[c].reduce((a, b) => a + b, 0);
    const order = [...ratios.keys()].sort((a, b) => missing[b] - missing[a] || frac[c][b] - frac[c][a] || a - b);
    for (const s of order) {
      if (left === 0) break;
      if (missing[s] <= 0) continue;
      alloc[c][s]++;
      missing[s]--;
      left--;
    }
    if (left !== 0) throw new Error(`trainValTestSplit: internal error allocating class ${c} (sizes ${JSON.stringify(classSizes)})`);
  });
  return alloc;
}

/**
 * Splits n samples (or as many as there are labels) into train, validation and test index sets,
 * disjoint and covering every sample, the same for the same seed. Stratified, every class keeps
 * its proportion in every split to within one sample.
 * n or labels [n] -> { train: Int32Array [~0.7n], val: [~0.15n], test: [~0.15n] }
 */
export function trainValTestSplit(nOrLabels: number | ArrayLike<number>, options: SplitOptions = {}): Split {
  const ratios = checkRatios(options.ratios ?? [0.7, 0.15, 0.15]);
  const rng = new Random(resolveSeed('trainValTestSplit', options.seed));
  const n = typeof nOrLabels === 'number' ? nOrLabels : nOrLabels?.length;
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`trainValTestSplit: expected a sample count (a non-negative integer) or an array of labels, got ${String(nOrLabels)}`);
  }
  let labels: ArrayLike<number> | undefined;
  if (options.stratify === true) {
    if (typeof nOrLabels === 'number') throw new Error('trainValTestSplit: stratify: true needs the labels as the first argument (or pass stratify: labels)');
    labels = nOrLabels;
  } else if (options.stratify) {
    labels = options.stratify;
    if (labels.length !== n) throw new Error(`trainValTestSplit: stratify has ${labels.length} labels for ${n} samples`);
  }

  // Group samples by class, classes in ascending label order so the result does not depend on
  // which class happens to come first in the data.
  const groups = new Map<number, number[]>();
  if (labels === undefined) {
    groups.set(0, Array.from({ length: n }, (_, i) => i));
  } else {
    for (let i = 0; i < n; i++) {
      const y = labels[i];
      if (typeof y !== 'number' || Number.isNaN(y)) throw new Error(`trainValTestSplit: label ${i} is ${String(y)}; stratify needs numeric class labels`);
      let g = groups.get(y);
      if (g === undefined) groups.set(y, (g = []));
      g.push(i);
    }
  }
  const classes = [...groups.keys()].sort((a, b) => a - b).map((k) => groups.get(k)!);
  const totals = largestRemainder(n, ratios);
  const sizes = stratifiedSizes(classes.map((g) => g.length), ratios, totals);

  const out = totals.map((t) => new Int32Array(t));
  const filled = [0, 0, 0];
  classes.forEach((members, c) => {
    rng.shuffle(members);
    let at = 0;
    for (let s = 0; s < 3; s++) {
      for (let k = 0; k < sizes[c][s]; k++) out[s][filled[s]++] = members[at++];
    }
  });
  for (const o of out) o.sort();
  return { train: out[0], val: out[1], test: out[2] };
}

function checkIndex(op: string, index: number, count: number, position: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= count) {
    throw new Error(`${op}: index ${index} at position ${position} is out of range for ${count} rows`);
  }
}

/**
 * Copies the rows `indices` names out of a flat row-major array into a new Float32Array (or into
 * `out`), converting integer data such as MNIST's Uint8Array pixels.
 * features [rows * rowSize], indices [k] -> Float32Array [k * rowSize]
 */
export function gatherRows(features: ArrayLike<number>, rowSize: number, indices: ArrayLike<number>, out?: Float32Array): Float32Array {
  if (!Number.isInteger(rowSize) || rowSize <= 0) throw new Error(`gatherRows: rowSize must be a positive integer, got ${rowSize}`);
  const rows = features.length / rowSize;
  if (!Number.isInteger(rows)) throw new Error(`gatherRows: ${features.length} elements do not divide into rows of ${rowSize}`);
  const k = indices.length;
  out ??= new Float32Array(k * rowSize);
  if (out.length !== k * rowSize) throw new Error(`gatherRows: out has ${out.length} elements, expected ${k} rows x ${rowSize} = ${k * rowSize}`);
  const typed = ArrayBuffer.isView(features) ? (features as unknown as Float32Array) : undefined;
  for (let j = 0; j < k; j++) {
    const i = indices[j];
    checkIndex('gatherRows', i, rows, j);
    if (typed !== undefined) {
      // TypedArray.set converts element types natively (uint8 -> float32) and copies in one call
      out.set(typed.subarray(i * rowSize, (i + 1) * rowSize), j * rowSize);
    } else {
      for (let e = 0; e < rowSize; e++) out[j * rowSize + e] = features[i * rowSize + e];
    }
  }
  return out;
}

/**
 * The labels (or `labelSize`-wide targets) of the rows `indices` names: float32 targets stay
 * Float32Array, integer labels (Uint8Array, Int32Array, number[]) become Int32Array.
 * labels [rows * labelSize], indices [k] -> [k * labelSize]
 */
export function gatherLabels(labels: Float32Array, indices: ArrayLike<number>, labelSize?: number): Float32Array;
export function gatherLabels(labels: Int32Array | Uint8Array | readonly number[], indices: ArrayLike<number>, labelSize?: number): Int32Array;
export function gatherLabels(labels: ArrayLike<number>, indices: ArrayLike<number>, labelSize = 1): Float32Array | Int32Array {
  if (!Number.isInteger(labelSize) || labelSize <= 0) throw new Error(`gatherLabels: labelSize must be a positive integer, got ${labelSize}`);
  const rows = labels.length / labelSize;
  if (!Number.isInteger(rows)) throw new Error(`gatherLabels: ${labels.length} labels do not divide into rows of ${labelSize}`);
  const out = labels instanceof Float32Array ? new Float32Array(indices.length * labelSize) : new Int32Array(indices.length * labelSize);
  for (let j = 0; j < indices.length; j++) {
    const i = indices[j];
    checkIndex('gatherLabels', i, rows, j);
    for (let e = 0; e < labelSize; e++) out[j * labelSize + e] = labels[i * labelSize + e];
  }
  return out;
}
