/**
 * Memory: training-like loops over modules (forward, backward, parameter update) inside tidy
 * leave the live tensor, buffer and byte counts flat, both when a hand-written SGD replaces the
 * parameters (setParameter) and when a Kiln optimizer updates them in place.
 */
import { expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import * as nn from '../../ts/nn/index.js';
import { forEachBackend } from '../backends.js';
import { randIntND, randND, readOf, T, Ti } from '../helpers.js';

const makeModel = () =>
  new nn.Sequential(
    new nn.Linear(4, 16, { seed: 1 }),
    new nn.BatchNorm1d(16),
    new nn.GELU(),
    new nn.Dropout(0.2),
    new nn.LayerNorm(16),
    new nn.Linear(16, 3, { seed: 2 }),
  );

forEachBackend(() => {
  it('200 iterations of forward + backward + setParameter SGD under noGrad, in tidy: memory stays flat', async () => {
    const baseline = kiln.memory();
    const model = makeModel();
    const x = T(randND([32, 4], 1));
    const y = Ti(randIntND([32], 2, 0, 3));
    const losses: number[] = [];
    const step = async () => {
      const [loss] = await readOf(() => {
        const l = kiln.crossEntropy(model.forward(x), y);
        l.backward();
        kiln.noGrad(() => {
          for (const [name, p] of model.namedParameters()) model.setParameter(name, p.sub(p.grad!.mul(0.05)));
        });
        return l;
      });
      losses.push(loss);
    };
    await step();
    const after1 = kiln.memory();
    for (let i = 0; i < 200; i++) await step();
    expect(kiln.memory(), 'live tensors, buffers and bytes after 200 more iterations').toEqual(after1);
    expect(losses[200]).toBeLessThan(losses[0]);
    expect(model.parameters().every((p) => p.requiresGrad && p.kept && !p.isDisposed)).toBe(true);
    model.eval();
    kiln.noGrad(() => kiln.tidy(() => {
      model.forward(x);
    }));
    expect(kiln.memory(), 'eval forward frees everything').toEqual(after1);
    model.dispose();
    kiln.dispose([x, y]);
    expect(kiln.memory(), 'everything freed').toEqual(baseline);
  });

  it('200 iterations with kiln.optim.SGD (in-place, momentum): flat memory, same parameter objects', () => {
    const baseline = kiln.memory();
    const model = makeModel();
    const params = model.parameters();
    const opt = new kiln.optim.SGD(params, { lr: 0.05, momentum: 0.9 });
    const x = T(randND([32, 4], 3));
    const y = Ti(randIntND([32], 4, 0, 3));
    const step = () =>
      kiln.tidy(() => {
        opt.zeroGrad();
        kiln.crossEntropy(model.forward(x), y).backward();
        opt.step();
      });
    step(); // creates the momentum buffers
    const after1 = kiln.memory();
    for (let i = 0; i < 200; i++) step();
    expect(kiln.memory()).toEqual(after1);
    expect(model.parameters()).toEqual(params);
    opt.dispose();
    model.dispose();
    kiln.dispose([x, y]);
    expect(kiln.memory()).toEqual(baseline);
  });
});
