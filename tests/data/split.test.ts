/** trainValTestSplit (plain and stratified) and the row/label gatherers. */
import { describe, expect, it } from 'vitest';
import { gatherLabels, gatherRows, Random, trainValTestSplit, type Split } from '../../ts/data/index.js';
import { expectThrows } from '../helpers.js';

/** Disjoint, covering 0..n-1, each part ascending. */
function expectPartition(split: Split, n: number): void {
  const seen = new Uint8Array(n);
  for (const part of [split.train, split.val, split.test]) {
    expect(part).toBeInstanceOf(Int32Array);
    for (let i = 0; i < part.length; i++) {
      // plain checks in the loop: an expect() per element would dominate the fuzz test's time
      if (i > 0 && part[i] <= part[i - 1]) throw new Error(`not ascending at ${i}: ${part[i - 1]}, ${part[i]}`);
      if (seen[part[i]]) throw new Error(`index ${part[i]} appears twice`);
      seen[part[i]] = 1;
    }
  }
  expect(seen.every((s) => s === 1), 'every index is in some split').toBe(true);
}

/** Every class's count in every split is within one sample of classSize * ratio. */
function expectStratified(split: Split, labels: ArrayLike<number>, ratios: number[]): void {
  const classSize = new Map<number, number>();
  for (let i = 0; i < labels.length; i++) classSize.set(labels[i], (classSize.get(labels[i]) ?? 0) + 1);
  [split.train, split.val, split.test].forEach((part, s) => {
    const counts = new Map<number, number>();
    for (const i of part) counts.set(labels[i], (counts.get(labels[i]) ?? 0) + 1);
    for (const [c, size] of classSize) {
      const got = counts.get(c) ?? 0;
      const expected = size * ratios[s];
      if (Math.abs(got - expected) > 1 + 1e-9) throw new Error(`class ${c} in split ${s}: ${got} samples, expected ${expected} ± 1`);
    }
  });
}

describe('trainValTestSplit', () => {
  it('splits 70/15/15 into a partition, the same for the same seed', () => {
    const a = trainValTestSplit(1000, { seed: 1 });
    expect([a.train.length, a.val.length, a.test.length]).toEqual([700, 150, 150]);
    expectPartition(a, 1000);
    expect(trainValTestSplit(1000, { seed: 1 })).toEqual(a);
    expect(trainValTestSplit(1000, { seed: 2 }).val).not.toEqual(a.val);
  });

  it('rounds sizes to a partition for awkward n and custom ratios', () => {
    for (const n of [0, 1, 2, 7, 101]) {
      const s = trainValTestSplit(n, { seed: 3 });
      expectPartition(s, n);
      expect(Math.abs(s.train.length - 0.7 * n)).toBeLessThan(1);
    }
    const s = trainValTestSplit(10, { ratios: [0.8, 0, 0.2], seed: 0 });
    expect([s.train.length, s.val.length, s.test.length]).toEqual([8, 0, 2]);
  });

  it('stratified: every class keeps its proportion in every split, and the totals stay exact', () => {
    const rng = new Random(5);
    // imbalanced classes, labels in shuffled order, including a class of one sample
    const labels = new Int32Array(1003);
    for (let i = 0; i < labels.length; i++) labels[i] = i < 600 ? 0 : i < 900 ? 1 : i < 990 ? 2 : i < 1002 ? 3 : 7;
    rng.shuffle(labels);
    const s = trainValTestSplit(labels, { stratify: true, seed: 9 });
    expectPartition(s, labels.length);
    expectStratified(s, labels, [0.7, 0.15, 0.15]);
    const plain = trainValTestSplit(labels.length, { seed: 9 });
    expect([s.train.length, s.val.length, s.test.length]).toEqual([plain.train.length, plain.val.length, plain.test.length]);
    expect(trainValTestSplit(labels, { stratify: true, seed: 9 })).toEqual(s);
    // the labels may also be passed as the option
    expect(trainValTestSplit(labels.length, { stratify: labels, seed: 9 })).toEqual(s);
  });

  it('stratified: random class layouts and ratios (fuzz)', () => {
    const rng = new Random(11);
    for (let trial = 0; trial < 200; trial++) {
      const n = 1 + rng.int(300);
      const classes = 1 + rng.int(12);
      const labels = Array.from({ length: n }, () => Math.floor(rng.next() ** 2 * classes));
      const a = rng.next();
      const b = rng.next() * (1 - a);
      const ratios: [number, number, number] = [a, b, 1 - a - b];
      const s = trainValTestSplit(labels, { stratify: true, ratios, seed: trial });
      expectPartition(s, n);
      expectStratified(s, labels, ratios);
      const plain = trainValTestSplit(n, { ratios, seed: trial });
      expect([s.train.length, s.val.length, s.test.length]).toEqual([plain.train.length, plain.val.length, plain.test.length]);
    }
  });

  it('MNIST-sized stratified split: 42,000 / 9,000 / 9,000', () => {
    const rng = new Random(1);
    const labels = Uint8Array.from({ length: 60000 }, () => rng.int(10));
    const s = trainValTestSplit(labels, { stratify: true, seed: 0 });
    expect([s.train.length, s.val.length, s.test.length]).toEqual([42000, 9000, 9000]);
    expectStratified(s, labels, [0.7, 0.15, 0.15]);
  });

  it('rejects bad arguments clearly', () => {
    expectThrows(() => trainValTestSplit(10, { ratios: [0.5, 0.5, 0.5] }), 'ratios must sum to 1');
    expectThrows(() => trainValTestSplit(10, { ratios: [0.5, 0.5] as unknown as [number, number, number] }), 'three non-negative numbers');
    expectThrows(() => trainValTestSplit(10, { ratios: [1.2, -0.2, 0] }), 'three non-negative numbers');
    expectThrows(() => trainValTestSplit(-1), 'non-negative integer');
    expectThrows(() => trainValTestSplit(10, { stratify: true }), 'stratify: true needs the labels');
    expectThrows(() => trainValTestSplit(10, { stratify: [1, 2] }), 'stratify has 2 labels for 10 samples');
    expectThrows(() => trainValTestSplit(10, { seed: 0.5 }), 'seed must be an integer');
  });
});

describe('gatherRows / gatherLabels', () => {
  it('copies the named rows, converting uint8 pixels to float32', () => {
    const pixels = Uint8Array.from([0, 1, 2, 10, 11, 12, 20, 21, 22]);
    const rows = gatherRows(pixels, 3, Int32Array.from([2, 0, 2]));
    expect(rows).toBeInstanceOf(Float32Array);
    expect(Array.from(rows)).toEqual([20, 21, 22, 0, 1, 2, 20, 21, 22]);
    const out = new Float32Array(3);
    expect(gatherRows([5, 6, 7, 8, 9, 10], 3, [1], out)).toBe(out);
    expect(Array.from(out)).toEqual([8, 9, 10]);
  });

  it('keeps integer labels int32 and targets float32', () => {
    const ints = gatherLabels(Uint8Array.from([3, 4, 5]), [2, 0]);
    expect(ints).toBeInstanceOf(Int32Array);
    expect(Array.from(ints)).toEqual([5, 3]);
    const targets = gatherLabels(Float32Array.from([0.5, 1.5, 2.5, 3.5]), [1], 2);
    expect(targets).toBeInstanceOf(Float32Array);
    expect(Array.from(targets)).toEqual([2.5, 3.5]);
  });

  it('rejects bad indices and shapes', () => {
    expectThrows(() => gatherRows(new Float32Array(6), 3, [0, 2]), 'index 2 at position 1 is out of range for 2 rows');
    expectThrows(() => gatherRows(new Float32Array(7), 3, [0]), '7 elements do not divide into rows of 3');
    expectThrows(() => gatherRows(new Float32Array(6), 3, [0], new Float32Array(2)), 'out has 2 elements');
    expectThrows(() => gatherLabels(Int32Array.from([1, 2]), [-1]), 'index -1 at position 0 is out of range');
  });
});
