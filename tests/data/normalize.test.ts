/** scale and Standardizer: statistics, the constant-feature rule, and fitting on the train split only. */
import { describe, expect, it } from 'vitest';
import { gatherRows, Random, scale, Standardizer, trainValTestSplit } from '../../ts/data/index.js';
import { assertClose, expectThrows } from '../helpers.js';

describe('scale', () => {
  it('multiplies into a new Float32Array', () => {
    const px = Uint8Array.from([0, 51, 255]);
    const out = scale(px, 1 / 255);
    expect(out).toBeInstanceOf(Float32Array);
    assertClose(out, [0, 0.2, 1]);
    expect(Array.from(px)).toEqual([0, 51, 255]);
    expectThrows(() => scale(px, NaN), 'factor must be a finite number');
    const inPlace = Float32Array.from([2, 4]);
    expect(scale(inPlace, 0.5, inPlace)).toBe(inPlace);
    expect(Array.from(inPlace)).toEqual([1, 2]);
    expectThrows(() => scale(px, 2, new Float32Array(2)), 'out has 2 elements, data has 3');
  });
});

describe('Standardizer', () => {
  it('computes per-feature mean and population std, and transforms to mean 0, std 1', () => {
    // 3 rows x 2 features
    const x = Float32Array.from([1, 10, 2, 20, 3, 60]);
    const s = new Standardizer().fit(x, 2);
    assertClose(s.mean, [2, 30]);
    assertClose(s.std, [Math.sqrt(2 / 3), Math.sqrt((400 + 100 + 900) / 3)]);
    const z = s.transform(x);
    for (const f of [0, 1]) {
      const col = [z[f], z[2 + f], z[4 + f]];
      const mean = col.reduce((a, b) => a + b) / 3;
      const variance = col.reduce((a, b) => a + (b - mean) ** 2, 0) / 3;
      expect(mean).toBeCloseTo(0, 6);
      expect(variance).toBeCloseTo(1, 5);
    }
    assertClose(s.inverseTransform(z), x, { atol: 1e-5 });
    assertClose(new Standardizer().fitTransform(x, 2), z);
  });

  it('only centres features that are constant in training (no division by ~0)', () => {
    const x = Float32Array.from([0, 1, 0, 3]); // feature 0 is always 0, like MNIST's corner pixels
    const s = new Standardizer().fit(x, 2);
    expect(s.std[0]).toBe(0);
    const test = s.transform(Float32Array.from([0.5, 2]));
    assertClose(test, [0.5, 0]);
    expect(Array.from(s.transform(x)).every(Number.isFinite)).toBe(true);
  });

  it('statistics come from the rows it is fitted on (the train split), not the others', () => {
    const rng = new Random(3);
    const n = 400;
    const d = 3;
    // feature f drifts with the row index, so train / val / test rows have different statistics
    const x = Float32Array.from({ length: n * d }, (_, i) => Math.floor(i / d) * ((i % d) + 1) + rng.normal());
    const split = trainValTestSplit(n, { seed: 0 });
    const train = gatherRows(x, d, split.train);
    const s = new Standardizer().fit(train, d);
    // the same numbers as computing them by hand over the train rows only
    for (let f = 0; f < d; f++) {
      const col = Array.from(split.train, (i) => x[i * d + f]);
      const mean = col.reduce((a, b) => a + b) / col.length;
      const std = Math.sqrt(col.reduce((a, b) => a + (b - mean) ** 2, 0) / col.length);
      expect(s.mean[f]).toBeCloseTo(mean, 3);
      expect(s.std[f] / std).toBeCloseTo(1, 5);
    }
    const all = new Standardizer().fit(x, d);
    expect(Math.abs(s.mean[0] - all.mean[0])).toBeGreaterThan(0.01);
    // transforming validation rows uses the train statistics: their mean is not forced to 0
    const zTrain = s.transform(train);
    const zVal = s.transform(gatherRows(x, d, split.val));
    const meanOf = (z: Float32Array) => z.filter((_, i) => i % d === 0).reduce((a, b) => a + b) / (z.length / d);
    expect(meanOf(zTrain)).toBeCloseTo(0, 4);
    expect(Math.abs(meanOf(zVal))).toBeGreaterThan(0.01);
  });

  it('round-trips through JSON', () => {
    const s = new Standardizer({ minStd: 1e-3 }).fit(Float32Array.from([1, 2, 3, 5]), 2);
    const t = Standardizer.fromJSON(JSON.parse(JSON.stringify(s)));
    expect(t.minStd).toBe(1e-3);
    const x = Float32Array.from([4, 4]);
    expect(Array.from(t.transform(x))).toEqual(Array.from(s.transform(x)));
  });

  it('explains misuse', () => {
    expectThrows(() => new Standardizer().transform(Float32Array.from([1])), 'call fit(xTrain, featureDim) first');
    expectThrows(() => new Standardizer().fit(Float32Array.from([1, 2, 3]), 2), '3 elements do not divide into rows of 2 features');
    expectThrows(() => new Standardizer().fit(new Float32Array(0), 2), 'no rows to fit on');
    expectThrows(() => new Standardizer().fit(Float32Array.from([1, NaN]), 1), 'feature 0 has a non-finite mean', 'NaN or Infinity');
    const s = new Standardizer().fit(Float32Array.from([1, 2]), 2);
    expectThrows(() => s.transform(Float32Array.from([1, 2, 3])), 'do not divide into rows of 2');
    expectThrows(() => Standardizer.fromJSON({ mean: [1], std: [], minStd: 0 }), 'equal, non-zero lengths');
  });
});
