/**
 * Feature scaling on flat row-major typed arrays, before the data becomes tensors. Statistics are
 * fitted on the training split only: using validation or test rows would leak information about
 * them into the model and make their scores optimistic.
 */

/**
 * `data * factor` as float32, e.g. `scale(images, 1 / 255)` maps pixels to [0, 1]. Pass `out`
 * (which may be `data` itself) to write in place and skip a second copy of a large array.
 * [n] -> Float32Array [n]
 */
export function scale(data: ArrayLike<number>, factor: number, out?: Float32Array): Float32Array {
  if (!Number.isFinite(factor)) throw new Error(`scale: factor must be a finite number, got ${factor}`);
  out ??= new Float32Array(data.length);
  if (out.length !== data.length) throw new Error(`scale: out has ${out.length} elements, data has ${data.length}`);
  for (let i = 0; i < data.length; i++) out[i] = data[i] * factor;
  return out;
}

/** Options of `Standardizer`. */
export interface StandardizerOptions {
  /**
   * Features whose training std is below this are only centred, not divided (their scale is 1).
   * Default 1e-7. Such a feature is constant in training (MNIST's border pixels); dividing by a
   * tiny floor instead would blow any non-zero value it takes at test time up to millions.
   */
  minStd?: number;
}

/** A fitted Standardizer's per-feature mean and std, as plain JSON (`toJSON()` / `Standardizer.fromJSON`). */
export interface StandardizerState {
  mean: number[];
  std: number[];
  minStd: number;
}

function rowsOf(op: string, x: ArrayLike<number>, featureDim: number): number {
  const rows = x.length / featureDim;
  if (!Number.isInteger(rows)) throw new Error(`${op}: ${x.length} elements do not divide into rows of ${featureDim} features`);
  return rows;
}

/**
 * Per-feature standardization, (x - mean) / std, with the statistics of the data it was fitted on.
 *
 *   const s = new Standardizer().fit(xTrain, 784);
 *   const xVal = s.transform(xValRaw);
 */
export class Standardizer {
  readonly minStd: number;
  #mean: Float64Array | undefined;
  #std: Float64Array | undefined;

  constructor(options: StandardizerOptions = {}) {
    const minStd = options.minStd ?? 1e-7;
    if (!(minStd >= 0)) throw new Error(`Standardizer: minStd must be a non-negative number, got ${minStd}`);
    this.minStd = minStd;
  }

  /**
   * Computes each feature's mean and population std (divisor n) over the rows of `x`; pass the
   * training rows only. Accumulates in float64, in two passes, so large means do not swallow
   * small variances. x [rows * featureDim] -> this
   */
  fit(x: ArrayLike<number>, featureDim: number): this {
    if (!Number.isInteger(featureDim) || featureDim <= 0) throw new Error(`Standardizer.fit: featureDim must be a positive integer, got ${featureDim}`);
    const rows = rowsOf('Standardizer.fit', x, featureDim);
    if (rows === 0) throw new Error('Standardizer.fit: no rows to fit on');
    const mean = new Float64Array(featureDim);
    for (let r = 0; r < rows; r++) for (let f = 0; f < featureDim; f++) mean[f] += x[r * featureDim + f];
    for (let f = 0; f < featureDim; f++) mean[f] /= rows;
    const variance = new Float64Array(featureDim);
    for (let r = 0; r < rows; r++) {
      for (let f = 0; f < featureDim; f++) {
        const d = x[r * featureDim + f] - mean[f];
        variance[f] += d * d;
      }
    }
    const bad = mean.findIndex((m) => !Number.isFinite(m));
    if (bad >= 0) throw new Error(`Standardizer.fit: feature ${bad} has a non-finite mean (${mean[bad]}); the data contains NaN or Infinity`);
    this.#mean = mean;
    this.#std = variance.map((v) => Math.sqrt(v / rows));
    return this;
  }

  /** Per-feature means. [featureDim] */
  get mean(): Float32Array {
    return Float32Array.from(this.#fitted('mean').mean);
  }

  /** Per-feature standard deviations as fitted (before the minStd rule). [featureDim] */
  get std(): Float32Array {
    return Float32Array.from(this.#fitted('std').std);
  }

  /** The number of features the standardizer was fitted on. */
  get featureDim(): number {
    return this.#fitted('featureDim').mean.length;
  }

  #fitted(op: string): { mean: Float64Array; std: Float64Array } {
    if (this.#mean === undefined || this.#std === undefined) throw new Error(`Standardizer.${op}: call fit(xTrain, featureDim) first`);
    return { mean: this.#mean, std: this.#std };
  }

  /** (x - mean) / std per feature. x [rows * featureDim] -> Float32Array [rows * featureDim] */
  transform(x: ArrayLike<number>): Float32Array {
    const { mean, std } = this.#fitted('transform');
    const d = mean.length;
    rowsOf('Standardizer.transform', x, d);
    const inv = std.map((s) => (s < this.minStd ? 1 : 1 / s));
    const out = new Float32Array(x.length);
    for (let row = 0; row < x.length; row += d) {
      for (let f = 0; f < d; f++) out[row + f] = (x[row + f] - mean[f]) * inv[f];
    }
    return out;
  }

  /** fit(x, featureDim) then transform(x). */
  fitTransform(x: ArrayLike<number>, featureDim: number): Float32Array {
    return this.fit(x, featureDim).transform(x);
  }

  /** x * std + mean per feature: undoes transform (for predictions of standardized targets). */
  inverseTransform(x: ArrayLike<number>): Float32Array {
    const { mean, std } = this.#fitted('inverseTransform');
    const d = mean.length;
    rowsOf('Standardizer.inverseTransform', x, d);
    const scaleOf = std.map((s) => (s < this.minStd ? 1 : s));
    const out = new Float32Array(x.length);
    for (let row = 0; row < x.length; row += d) {
      for (let f = 0; f < d; f++) out[row + f] = x[row + f] * scaleOf[f] + mean[f];
    }
    return out;
  }

  /** The fitted statistics as plain JSON, to save next to a model. */
  toJSON(): StandardizerState {
    const { mean, std } = this.#fitted('toJSON');
    return { mean: Array.from(mean), std: Array.from(std), minStd: this.minStd };
  }

  /** A fitted Standardizer from `toJSON()` output. */
  static fromJSON(state: StandardizerState): Standardizer {
    if (!state || !Array.isArray(state.mean) || !Array.isArray(state.std) || state.mean.length !== state.std.length || state.mean.length === 0) {
      throw new Error('Standardizer.fromJSON: expected { mean: number[], std: number[], minStd } with equal, non-zero lengths');
    }
    const s = new Standardizer({ minStd: state.minStd });
    s.#mean = Float64Array.from(state.mean);
    s.#std = Float64Array.from(state.std);
    return s;
  }
}
