/**
 * conv2dConcat: several convolutions of one input concatenated on channels. Its values equal
 * concat(conv2d per set, 1) on every backend (the native kernels write each set's channel slice
 * of the result in place: pointwise, Winograd, direct, im2col + GEMM and the copied few-channel
 * path), its gradients match finite differences, and bad filter sets are errors naming it.
 */
import { expect, it } from 'vitest';
import * as kiln from '../ts/index.js';
import { forEachBackend } from './backends.js';
import { T, assertClose, expectThrows, randND, read } from './helpers.js';
import { gradCheck, uniform } from './gradcheck.js';

const TOL = { atol: 1e-5, rtol: 1e-4 };

/** [what it exercises, input shape, sets as [weight shape, options]]. */
const CASES: Array<[string, number[], Array<[number[], Omit<kiln.Conv2dFilterSet, 'weight'>]>]> = [
  ['fire module at 27x27 (pointwise + Winograd)', [2, 16, 27, 27], [[[20, 16, 1, 1], { activation: 'relu' }], [[24, 16, 3, 3], { padding: 1, activation: 'relu' }]]],
  ['fire module at 13x13 (pointwise + direct)', [3, 48, 13, 13], [[[40, 48, 1, 1], { activation: 'relu' }], [[48, 48, 3, 3], { padding: 'same', activation: 'relu' }]]],
  ['many channels (im2col + GEMM), a set without bias, stride 2 and tanh', [1, 96, 9, 9], [[[10, 96, 1, 1], { stride: 2 }], [[17, 96, 3, 3], { stride: 2, padding: 1, activation: 'tanh' }]]],
  ['few channels, depthwise and leakyRelu', [2, 3, 15, 15], [[[7, 3, 3, 3], { padding: 1, activation: 'leakyRelu', alpha: 0.2 }], [[3, 1, 3, 3], { padding: 1, groups: 3 }], [[4, 3, 1, 1], {}]]],
];

forEachBackend(() => {
  it('equals concat(conv2d per filter set) on every kernel path, batches 1 to 3', async () => {
    let seed = 1;
    for (const [label, xs, specs] of CASES) {
      const x = T(randND(xs, seed++));
      const sets: kiln.Conv2dFilterSet[] = specs.map(([ws, options], i) => ({ ...options, weight: T(randND(ws, seed++)), bias: i === 0 && label.includes('without bias') ? null : T(randND([ws[0]], seed++)) }));
      const want = kiln.tidy(() => kiln.concat(sets.map((s) => kiln.conv2d(x, s.weight, s)), 1));
      const got = kiln.conv2dConcat(x, sets);
      expect(got.shape, label).toEqual(want.shape);
      assertClose(await read(got), await read(want), TOL, label);
      kiln.dispose([x, got, want, ...sets.flatMap((s) => [s.weight, ...(s.bias ? [s.bias] : [])])]);
    }
  });

  it('gradients of the input, filters and biases match finite differences', async () => {
    await gradCheck('conv2dConcat', [uniform([2, 4, 5, 5], 1), uniform([3, 4, 1, 1], 2), uniform([3], 3), uniform([2, 4, 3, 3], 4), uniform([2], 5)], ([x, w1, b1, w3, b3]) =>
      kiln.conv2dConcat(x, [
        { weight: w1, bias: b1, activation: 'tanh' },
        { weight: w3, bias: b3, padding: 1, activation: 'sigmoid' },
      ]),
    );
  });

  it('refuses sets of different output sizes, no sets, and a weight that does not fit, naming conv2dConcat', () => {
    const x = kiln.randn([1, 8, 10, 10], { seed: 1 });
    const [w1, w3, wrong] = [kiln.randn([4, 8, 1, 1], { seed: 2 }), kiln.randn([4, 8, 3, 3], { seed: 3 }), kiln.randn([4, 5, 1, 1], { seed: 4 })];
    expectThrows(() => kiln.conv2dConcat(x, [{ weight: w1 }, { weight: w3 }]), 'conv2dConcat', 'same output height and width', '10x10', '8x8');
    expectThrows(() => kiln.conv2dConcat(x, []), 'conv2dConcat', 'at least one filter set');
    expectThrows(() => kiln.conv2dConcat(x, [{ weight: w1 }, { weight: wrong }]), 'conv2dConcat', 'filter set 1', '[4, 5, 1, 1]');
    kiln.dispose([x, w1, w3, wrong]);
  });
});
