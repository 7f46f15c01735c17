/**
 * Histograms in TensorBoard's form (HistogramProto): equal-width buckets over [min, max], each
 * bucket counting the values in (previous limit, its limit], plus the count, sum and sum of
 * squares TensorBoard shows beside them.
 */

import type { HistogramValue } from './proto.js';

/**
 * The histogram of the finite values of `values` in `bins` equal-width buckets (non-finite
 * values are left out: a NaN weight shows as a smaller `num`, not a broken chart).
 */
export function histogram(values: ArrayLike<number>, bins = 30): HistogramValue {
  if (!Number.isInteger(bins) || bins < 1) throw new Error(`TensorBoard histogram: bins must be a positive integer, got ${bins}`);
  let min = Infinity;
  let max = -Infinity;
  let num = 0;
  let sum = 0;
  let sumSquares = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    num++;
    sum += v;
    sumSquares += v * v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (num === 0) return { min: 0, max: 0, num: 0, sum: 0, sum_squares: 0, bucket_limit: [0], bucket: [0] };
  // One bucket when every value is the same: there is no width to split.
  const count = max > min ? bins : 1;
  const width = (max - min) / count;
  const limits = Array.from({ length: count }, (_, i) => (i === count - 1 ? max : min + (i + 1) * width));
  const buckets = new Array<number>(count).fill(0);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    let b = width > 0 ? Math.min(count - 1, Math.max(0, Math.ceil((v - min) / width) - 1)) : 0;
    // The division can land one bucket off at an edge; the stored limits decide.
    while (b > 0 && v <= limits[b - 1]) b--;
    while (b < count - 1 && v > limits[b]) b++;
    buckets[b]++;
  }
  return { min, max, num, sum, sum_squares: sumSquares, bucket_limit: limits, bucket: buckets };
}
