/**
 * Gradients of the reductions over single, negative, several and all axes, with keepDims both
 * ways; softmax and logSoftmax on every axis. max/min inputs are 0.1 apart so the winner of each
 * reduction never changes under a finite-difference step.
 */
import { it } from 'vitest';
import * as kiln from '../../ts/index.js';
import type { Tensor } from '../../ts/index.js';
import { forEachBackend } from '../backends.js';
import { gradCheck, separated } from '../gradcheck.js';

type Axes = number | number[] | undefined;

const REDUCTIONS: Array<{ name: string; fn: (x: Tensor, axis: Axes, keepDims: boolean) => Tensor }> = [
  { name: 'sum', fn: kiln.sum },
  { name: 'mean', fn: kiln.mean },
  { name: 'max', fn: kiln.max },
  { name: 'min', fn: kiln.min },
  { name: 'variance', fn: (x, a, k) => kiln.variance(x, a, k) },
  { name: 'variance(correction 1)', fn: (x, a, k) => kiln.variance(x, a, k, 1) },
  { name: 'logSumExp', fn: kiln.logSumExp },
];

const AXES: Axes[] = [undefined, 0, 1, -1, [0, 2], [2, 0], [1, 2], [0, 1, 2]];

forEachBackend(() => {
  const x = separated([3, 4, 5]);
  for (const r of REDUCTIONS) {
    for (const keepDims of [false, true]) {
      it(`${r.name}: every axis set, keepDims ${keepDims}`, async () => {
        for (const axes of AXES) {
          await gradCheck(`${r.name}(axis ${JSON.stringify(axes)}, keepDims ${keepDims})`, [x], ([t]) => r.fn(t, axes, keepDims));
        }
      });
    }
    it(`${r.name}: of a transposed (non-contiguous) input`, async () => {
      await gradCheck(`${r.name} of permute`, [x], ([t]) => r.fn(t.permute([2, 0, 1]), [1], false));
    });
  }

  it('method forms: x.sum(), x.mean(1, true), x.max(-1)', async () => {
    await gradCheck('x.sum()', [x], ([t]) => t.sum());
    await gradCheck('x.mean(1, true)', [x], ([t]) => t.mean(1, true));
    await gradCheck('x.max(-1)', [x], ([t]) => t.max(-1));
    await gradCheck('x.variance([0, 1], false, 1)', [x], ([t]) => t.variance([0, 1], false, 1));
  });

  for (const log of [false, true]) {
    const name = log ? 'logSoftmax' : 'softmax';
    it(`${name}: every axis of a rank-3 tensor`, async () => {
      for (const axis of [0, 1, 2, -1, -2]) {
        await gradCheck(`${name}(axis ${axis})`, [x], ([t]) => (log ? kiln.logSoftmax(t, axis) : kiln.softmax(t, axis)));
      }
    });
    it(`${name}: default axis, rank 1 and rank 2, and large logits`, async () => {
      await gradCheck(`${name} rank 1`, [separated([6])], ([t]) => (log ? t.logSoftmax() : t.softmax()));
      await gradCheck(`${name} rank 2`, [separated([4, 5])], ([t]) => (log ? t.logSoftmax() : t.softmax()));
      // a +50 shift must not overflow (the gradient is shift-invariant)
      await gradCheck(`${name} shifted`, [separated([4, 5], 50)], ([t]) => (log ? t.logSoftmax() : t.softmax()), { eps: 3e-2 });
    });
  }
});
