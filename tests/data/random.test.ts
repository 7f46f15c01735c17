/** The data layer's seeded generator. */
import { describe, expect, it } from 'vitest';
import { deriveSeed, Random } from '../../ts/data/index.js';
import { expectThrows } from '../helpers.js';

describe('Random', () => {
  it('repeats its sequence for a seed and differs across seeds', () => {
    const a = new Random(123);
    const b = new Random(123);
    const xs = Array.from({ length: 5 }, () => a.next());
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(xs);
    expect(new Random(124).next()).not.toBe(xs[0]);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expectThrows(() => new Random(1.5), 'seed must be an integer');
  });

  it('draws uniform integers, standard normals and permutations', () => {
    const r = new Random(9);
    const counts = new Array(4).fill(0);
    for (let i = 0; i < 8000; i++) counts[r.int(4)]++;
    for (const c of counts) expect(Math.abs(c - 2000)).toBeLessThan(200);
    let sum = 0;
    let sq = 0;
    const n = 20000;
    for (let i = 0; i < n; i++) {
      const z = r.normal();
      sum += z;
      sq += z * z;
    }
    expect(sum / n).toBeCloseTo(0, 1);
    expect(sq / n).toBeCloseTo(1, 1);
    const p = r.permutation(100);
    expect(Array.from(p).sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it('derives distinct, stable sub-stream seeds', () => {
    const seeds = new Set(Array.from({ length: 1000 }, (_, k) => deriveSeed(7, k)));
    expect(seeds.size).toBe(1000);
    expect(deriveSeed(7, 3)).toBe(deriveSeed(7, 3));
    expect(deriveSeed(7, 3)).not.toBe(deriveSeed(8, 3));
  });
});
