/**
 * Gradients of every unary op against finite differences, with inputs kept away from kinks
 * (0 for abs/relu/leakyRelu/elu) and domain edges (log/sqrt/rsqrt on positives).
 */
import { expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import type { Tensor } from '../../ts/index.js';
import { backend } from '../../ts/engine.js';
import { forEachBackend } from '../backends.js';
import { gradCheck, positive, signed, uniform } from '../gradcheck.js';
import type { ND } from '../reference.js';

interface UnaryCase {
  name: string;
  fn: (x: Tensor) => Tensor;
  input: ND;
}

const SHAPE = [3, 4];

const CASES: UnaryCase[] = [
  { name: 'neg', fn: kiln.neg, input: uniform(SHAPE, 1, -2, 2) },
  { name: 'abs', fn: kiln.abs, input: signed(SHAPE, 2) },
  { name: 'exp', fn: kiln.exp, input: uniform(SHAPE, 3, -2, 2) },
  { name: 'log', fn: kiln.log, input: positive(SHAPE, 4) },
  { name: 'sqrt', fn: kiln.sqrt, input: positive(SHAPE, 5) },
  { name: 'rsqrt', fn: kiln.rsqrt, input: positive(SHAPE, 6) },
  { name: 'square', fn: kiln.square, input: uniform(SHAPE, 7, -2, 2) },
  { name: 'sin', fn: kiln.sin, input: uniform(SHAPE, 8, -3, 3) },
  { name: 'cos', fn: kiln.cos, input: uniform(SHAPE, 9, -3, 3) },
  { name: 'tanh', fn: kiln.tanh, input: uniform(SHAPE, 10, -2, 2) },
  { name: 'sigmoid', fn: kiln.sigmoid, input: uniform(SHAPE, 11, -4, 4) },
  { name: 'relu', fn: kiln.relu, input: signed(SHAPE, 12) },
  { name: 'leakyRelu', fn: (x) => kiln.leakyRelu(x), input: signed(SHAPE, 13) },
  { name: 'leakyRelu(alpha 0.3)', fn: (x) => kiln.leakyRelu(x, 0.3), input: signed(SHAPE, 14) },
  { name: 'elu', fn: (x) => kiln.elu(x), input: signed(SHAPE, 15) },
  { name: 'elu(alpha 0.5)', fn: (x) => kiln.elu(x, 0.5), input: signed(SHAPE, 16) },
  { name: 'gelu', fn: kiln.gelu, input: uniform(SHAPE, 17, -3, 3) },
  { name: 'softplus', fn: kiln.softplus, input: uniform(SHAPE, 18, -4, 4) },
  // Kept away from 0, where |x| has a kink (the derivative is continuous there, the second is not).
  { name: 'softsign', fn: kiln.softsign, input: signed(SHAPE, 19) },
  { name: 'mish', fn: kiln.mish, input: uniform(SHAPE, 20, -4, 4) },
];

forEachBackend(() => {
  it('every unary op of the backend has a gradient check here', () => {
    const covered = new Set(CASES.map((c) => c.name.split('(')[0]));
    const missing = Object.keys(backend().codes.unary).filter((op) => !covered.has(op));
    expect(missing, 'unary ops without a gradient check').toEqual([]);
  });

  for (const c of CASES) {
    it(`${c.name}: gradient matches finite differences`, async () => {
      await gradCheck(c.name, [c.input], ([x]) => c.fn(x));
    });
  }

  it('methods and functions record the same gradient (x.exp().sin() chain)', async () => {
    await gradCheck('exp∘sin chain', [uniform(SHAPE, 20, -1, 1)], ([x]) => x.sin().exp().tanh());
  });

  it('unary ops on a non-contiguous (transposed) input', async () => {
    await gradCheck('sigmoid of transpose', [uniform([3, 5], 21, -2, 2)], ([x]) => x.transpose().sigmoid());
    await gradCheck('log of a slice', [positive([4, 5], 22)], ([x]) => x.slice([1, 1], [2, 3]).log());
  });
});
