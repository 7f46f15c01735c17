/**
 * The Cora parser on a small release-format fixture, its errors, and the Planetoid split's
 * contract (per-class counts, sizes, disjointness, determinism per seed).
 */
import { describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { expectThrows } from '../helpers.js';

const CONTENT = ['31336\t0\t1\t0\tNeural_Networks', '1061127\t1\t0\t0\tRule_Learning', '1106406\t0\t0\t1\tNeural_Networks', ''].join('\n');
const CITES = ['31336\t1061127', '1106406\t31336', ''].join('\n');

describe('Cora', () => {
  it('parses papers, features, sorted classes and citation links', () => {
    const cora = kiln.data.parseCora(CONTENT, CITES);
    expect([cora.numNodes, cora.numFeatures]).toEqual([3, 3]);
    expect(Array.from(cora.features)).toEqual([0, 1, 0, 1, 0, 0, 0, 0, 1]);
    expect(cora.classes).toEqual(['Neural_Networks', 'Rule_Learning']);
    expect(Array.from(cora.labels)).toEqual([0, 1, 0]);
    expect(cora.paperIds).toEqual(['31336', '1061127', '1106406']);
    // "cited citing": 1061127 cites 31336, 31336 cites 1106406.
    expect(Array.from(cora.citing)).toEqual([1, 0]);
    expect(Array.from(cora.cited)).toEqual([0, 2]);
  });

  it('reports malformed files with the file and line', () => {
    expectThrows(() => kiln.data.parseCora(CONTENT, '31336\t999'), 'parseCora', 'cora.cites line 1', 'two papers');
    expectThrows(() => kiln.data.parseCora('1\t0\t1\tA\n2\t0\tB', ''), 'parseCora', 'cora.content line 2', 'expected 4');
    expectThrows(() => kiln.data.parseCora('1\t0\t2\tA', ''), 'parseCora', "expected 0 or 1, got '2'");
    expectThrows(() => kiln.data.parseCora('1\t0\tA\n1\t1\tA', ''), 'parseCora', 'repeats paper id 1');
    expectThrows(() => kiln.data.loadCora('/nonexistent-cora'), 'loadCora', 'cora.content is missing');
  });

  it('planetoidSplit: perClass per class, val and test sizes, disjoint, fixed by the seed', () => {
    const labels = Int32Array.from({ length: 400 }, (_, i) => (i * 7) % 5);
    const split = kiln.data.planetoidSplit(labels, { perClass: 10, val: 100, test: 200, seed: 3 });
    expect([split.train.length, split.val.length, split.test.length]).toEqual([50, 100, 200]);
    const counts = new Array(5).fill(0);
    for (const i of split.train) counts[labels[i]]++;
    expect(counts).toEqual([10, 10, 10, 10, 10]);
    expect(new Set([...split.train, ...split.val, ...split.test]).size).toBe(350);
    const again = kiln.data.planetoidSplit(labels, { perClass: 10, val: 100, test: 200, seed: 3 });
    expect(Array.from(again.test)).toEqual(Array.from(split.test));
    const other = kiln.data.planetoidSplit(labels, { perClass: 10, val: 100, test: 200, seed: 4 });
    expect(Array.from(other.test)).not.toEqual(Array.from(split.test));
    expectThrows(() => kiln.data.planetoidSplit(labels, { perClass: 90 }), 'planetoidSplit', 'fewer than perClass = 90');
    expectThrows(() => kiln.data.planetoidSplit(labels, { perClass: 10, val: 300, test: 100 }), 'planetoidSplit', 'only 350 remain');
  });
});
