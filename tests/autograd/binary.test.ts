/**
 * Gradients of the binary ops with broadcasting (the gradient of a broadcast operand is summed
 * back to its shape), of where, and of the plain-number operand forms.
 */
import { expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import type { Tensor } from '../../ts/index.js';
import { backend } from '../../ts/engine.js';
import { forEachBackend } from '../backends.js';
import { Tb, randIntND } from '../helpers.js';
import { gradCheck, positive, separated, uniform } from '../gradcheck.js';
import type { ND } from '../reference.js';

type Binary = (a: Tensor, b: Tensor) => Tensor;

/** Shape pairs: same shape, trailing broadcast, inner size-1, rank-0, both sides broadcasting. */
const SHAPES: Array<[number[], number[]]> = [
  [[2, 3], [2, 3]],
  [[2, 3, 4], [3, 1]],
  [[4], [2, 3, 4]],
  [[2, 3], []],
  [[2, 1, 4], [3, 1]],
];

interface BinaryCase {
  name: string;
  fn: Binary;
  inputs: (a: number[], b: number[], seed: number) => [ND, ND];
}

const plain = (a: number[], b: number[], seed: number): [ND, ND] => [uniform(a, seed, -2, 2), uniform(b, seed + 1, -2, 2)];

const CASES: BinaryCase[] = [
  { name: 'add', fn: kiln.add, inputs: plain },
  { name: 'sub', fn: kiln.sub, inputs: plain },
  { name: 'mul', fn: kiln.mul, inputs: plain },
  // denominator away from zero
  { name: 'div', fn: kiln.div, inputs: (a, b, s) => [uniform(a, s, -2, 2), positive(b, s + 1)] },
  // positive base, so d/db = a^b·ln a exists
  { name: 'pow', fn: kiln.pow, inputs: (a, b, s) => [positive(a, s), uniform(b, s + 1, -2, 2)] },
  // no near-ties: b's values sit halfway between a's
  { name: 'maximum', fn: kiln.maximum, inputs: (a, b) => [separated(a), separated(b, 0.05)] },
  { name: 'minimum', fn: kiln.minimum, inputs: (a, b) => [separated(a), separated(b, 0.05)] },
];

forEachBackend(() => {
  it('every differentiable binary op of the backend has a gradient check here', () => {
    const comparisons = ['equal', 'notEqual', 'less', 'lessEqual', 'greater', 'greaterEqual'];
    const covered = new Set(CASES.map((c) => c.name));
    const missing = Object.keys(backend().codes.binary).filter((op) => !covered.has(op) && !comparisons.includes(op));
    expect(missing).toEqual([]);
  });

  for (const c of CASES) {
    for (const [sa, sb] of SHAPES) {
      it(`${c.name}: [${sa}] with [${sb}] (both operands)`, async () => {
        await gradCheck(`${c.name} [${sa}]·[${sb}]`, c.inputs(sa, sb, sa.length * 10 + sb.length), ([a, b]) => c.fn(a, b));
      });
    }
    it(`${c.name}: operands swapped ([3, 1] with [2, 3, 4])`, async () => {
      await gradCheck(`${c.name} swapped`, c.inputs([3, 1], [2, 3, 4], 77), ([x, y]) => c.fn(x, y));
    });
  }

  it('plain-number operands: x + 2, x · 3, x / 4, x ^ 3, 2 - x', async () => {
    const x = uniform([2, 3], 5, 0.5, 2);
    await gradCheck('x + 2', [x], ([t]) => t.add(2));
    await gradCheck('x · 3', [x], ([t]) => t.mul(3));
    await gradCheck('x / 4', [x], ([t]) => t.div(4));
    await gradCheck('x ^ 3', [x], ([t]) => t.pow(3));
    await gradCheck('2 - x', [x], ([t]) => kiln.sub(2, t));
    await gradCheck('2 ^ x', [x], ([t]) => kiln.pow(2, t));
  });

  it('only one operand requiring gradients', async () => {
    const [a, b] = plain([2, 3, 4], [3, 1], 8);
    await gradCheck('mul wrt a', [a, b], ([x, y]) => x.mul(y), { wrt: [0] });
    await gradCheck('mul wrt b', [a, b], ([x, y]) => x.mul(y), { wrt: [1] });
  });

  it('the same tensor as both operands (x · x, x - x, x / x)', async () => {
    const x = positive([2, 3], 9);
    await gradCheck('x · x', [x], ([t]) => t.mul(t));
    await gradCheck('x / x + x', [x], ([t]) => t.div(t).add(t));
    await gradCheck('x ^ x', [x], ([t]) => t.pow(t));
  });

  it('where: both branches, broadcasting condition and branches', async () => {
    const cond = randIntND([3, 4], 3, 0, 2);
    await gradCheck('where [3,4] ? [3,1] : [4]', [uniform([3, 1], 1), uniform([4], 2)], ([a, b]) => kiln.where(Tb(cond), a, b));
    await gradCheck('where [3,4] ? [3,4] : [3,4]', [uniform([3, 4], 3), uniform([3, 4], 4)], ([a, b]) => kiln.where(Tb(cond), a, b));
    const rowCond = randIntND([2, 1, 4], 4, 0, 2);
    await gradCheck('where [2,1,4] ? [3,1] : []', [uniform([3, 1], 5), uniform([], 6)], ([a, b]) => kiln.where(Tb(rowCond), a, b));
    await gradCheck('where with a number branch', [uniform([3, 4], 7)], ([a]) => kiln.where(Tb(cond), a, 0.5));
    await gradCheck('Tensor.where', [uniform([3, 4], 8)], ([a]) => Tb(cond).where(0.5, a));
  });
});
