/**
 * Optimizer checkpoints: state() then loadState() into a fresh optimizer over restored
 * parameters continues exactly (bit for bit) as an uninterrupted run; mismatched states error.
 */
import { expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import type { Tensor } from '../../ts/index.js';
import { optim } from '../../ts/index.js';
import type { Optimizer, OptimizerState } from '../../ts/optim/index.js';
import { forEachBackend } from '../backends.js';
import { assertEqual, expectThrows } from '../helpers.js';
import { kilnStep, makeParams, quadratic, values } from './problem.js';

const MAKERS: Record<string, (p: Tensor[]) => Optimizer> = {
  'SGD plain': (p) => new optim.SGD(p, { lr: 0.1 }),
  'SGD momentum + dampening': (p) => new optim.SGD(p, { lr: 0.1, momentum: 0.9, dampening: 0.1 }),
  'SGD Nesterov': (p) => new optim.SGD(p, { lr: 0.1, momentum: 0.9, nesterov: true }),
  Adam: (p) => new optim.Adam(p, { lr: 0.05, weightDecay: 0.01 }),
  AdamW: (p) => new optim.AdamW(p, { lr: 0.05 }),
  RMSProp: (p) => new optim.RMSProp(p, { lr: 0.01, clipNorm: 2 }),
  AdaGrad: (p) => new optim.AdaGrad(p, { lr: 0.1, clipValue: 1 }),
};

/** A checkpoint as it would be written to disk: plain numbers and fresh tensors. */
async function checkpoint(opt: Optimizer): Promise<OptimizerState> {
  const { slots, ...plain } = opt.state();
  const copies = await Promise.all(slots.map((ts) => Promise.all(ts.map(async (t) => kiln.tensor(await t.data(), [...t.shape])))));
  return { ...structuredClone(plain), slots: copies };
}

forEachBackend(() => {
  for (const [name, make] of Object.entries(MAKERS)) {
    it(`${name}: state()/loadState() round trip continues identically to an uninterrupted run`, async () => {
      const q = quadratic(11);
      // uninterrupted: 6 steps, with an lr change after step 3 (as a schedule would make)
      const straightParams = makeParams(q);
      const straight = make(straightParams);
      for (let s = 1; s <= 6; s++) {
        if (s === 4) straight.lr *= 0.5;
        kilnStep(q, straightParams, straight);
      }

      // interrupted after 3 steps: checkpoint parameters and optimizer, drop everything
      const firstParams = makeParams(q);
      const first = make(firstParams);
      for (let s = 1; s <= 3; s++) kilnStep(q, firstParams, first);
      first.lr *= 0.5;
      const savedParams = await values(firstParams);
      const saved = await checkpoint(first);
      first.dispose();
      kiln.dispose(firstParams);

      // resume in a new optimizer
      const resumedParams = makeParams(q, savedParams);
      const resumed = make(resumedParams);
      resumed.loadState(saved);
      expect(resumed.stepCount).toBe(3);
      expect(resumed.lr).toBe(straight.lr);
      // loadState copies: the checkpoint's tensors may be freed
      kiln.dispose(saved.slots);
      for (let s = 4; s <= 6; s++) kilnStep(q, resumedParams, resumed);

      const [want, got] = [await values(straightParams), await values(resumedParams)];
      got.forEach((v, i) => assertEqual(v, want[i], `${name}: parameter ${i} after resuming`));
      const [ws, gs] = [straight.state(), resumed.state()];
      for (let i = 0; i < ws.slots.length; i++) {
        for (let k = 0; k < ws.slots[i].length; k++) assertEqual(await gs.slots[i][k].data(), await ws.slots[i][k].data(), `${name}: state ${k} of parameter ${i}`);
      }
      straight.dispose();
      resumed.dispose();
      kiln.dispose([...straightParams, ...resumedParams]);
    });
  }

  it('a checkpoint keeps per-parameter progress: a parameter first updated at step 2 resumes identically', async () => {
    for (const [name, make] of [['Adam', MAKERS.Adam], ['SGD momentum + dampening', MAKERS['SGD momentum + dampening']]] as const) {
      const q = quadratic(13);
      const schedule = (s: number) => (s === 1 ? [0] : [0, 1]);
      const straightParams = makeParams(q);
      const straight = make(straightParams);
      for (let s = 1; s <= 4; s++) kilnStep(q, straightParams, straight, schedule(s));

      const firstParams = makeParams(q);
      const first = make(firstParams);
      for (let s = 1; s <= 2; s++) kilnStep(q, firstParams, first, schedule(s));
      const saved = await checkpoint(first);
      const savedParams = await values(firstParams);
      first.dispose();
      kiln.dispose(firstParams);

      const resumedParams = makeParams(q, savedParams);
      const resumed = make(resumedParams);
      resumed.loadState(saved);
      kiln.dispose(saved.slots);
      for (let s = 3; s <= 4; s++) kilnStep(q, resumedParams, resumed, schedule(s));
      const [want, got] = [await values(straightParams), await values(resumedParams)];
      got.forEach((v, i) => assertEqual(v, want[i], `${name}: parameter ${i} after resuming`));
      straight.dispose();
      resumed.dispose();
      kiln.dispose([...straightParams, ...resumedParams]);
    }
  });

  it('loadState rejects a state of another kind, parameter count or shape', () => {
    const q = quadratic(12);
    const params = makeParams(q);
    const adam = new optim.Adam(params, { lr: 0.1 });
    kilnStep(q, params, adam);
    const sgd = new optim.SGD(params, { lr: 0.1, momentum: 0.9 });
    expectThrows(() => sgd.loadState(adam.state()), 'sgd', 'adam');
    const other = new optim.Adam([params[0]], { lr: 0.1 });
    expectThrows(() => other.loadState(adam.state()), 'adam.loadState', '2 parameters', 'has 1');
    const swapped = new optim.Adam([params[1], params[0]], { lr: 0.1 });
    expectThrows(() => swapped.loadState(adam.state()), 'adam.loadState', 'parameter 0', '[3]');
    for (const o of [adam, sgd, other, swapped]) o.dispose();
    kiln.dispose(params);
  });
});
