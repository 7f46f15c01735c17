/**
 * Saliency and integrated gradients. A linear model has closed forms (the gradient of class c's
 * score is row c of W), and integrated gradients must satisfy completeness on a nonlinear model:
 * the attributions add up to score(x) - score(baseline).
 */
import { expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { forEachBackend } from '../backends.js';
import { assertClose, expectThrows, read } from '../helpers.js';

forEachBackend(() => {
  it('saliency of a linear model is |row of W| for the target class; the weights get no gradient', async () => {
    const model = new kiln.nn.Linear(4, 3, { seed: 3 });
    const x = kiln.randn([2, 4], { seed: 4 });
    const s = kiln.interpret.saliency(model, x, { target: [2, 0] });
    const w = await read(model.weight); // [out, in]
    const expected = [...w.slice(8, 12), ...w.slice(0, 4)].map(Math.abs);
    assertClose(await read(s), expected, { atol: 1e-6 }, 'saliency');
    expect(model.weight.grad, 'no weight gradient computed').toBeNull();
    kiln.dispose([x, s]);
    model.dispose();
  });

  it('the default target is the predicted class', async () => {
    const model = new kiln.nn.Linear(3, 5, { seed: 5 });
    const x = kiln.randn([4, 3], { seed: 6 });
    const predicted = kiln.tidy(() => model.forward(x).argmax(1));
    const a = kiln.interpret.inputGradients(model, x);
    const b = kiln.interpret.inputGradients(model, x, { target: predicted });
    expect(await read(a)).toEqual(await read(b));
    kiln.dispose([x, predicted, a, b]);
    model.dispose();
  });

  it('integrated gradients of a linear model are (x - baseline) · W[c]', async () => {
    const model = new kiln.nn.Linear(4, 2, { seed: 7 });
    const x = kiln.randn([1, 4], { seed: 8 });
    const baseline = kiln.tensor([0.5, 0.5, 0.5, 0.5]);
    const ig = kiln.interpret.integratedGradients(model, x, { target: 1, baseline, steps: 4 });
    const w = await read(model.weight);
    const xs = await read(x);
    assertClose(await read(ig), xs.map((v, i) => (v - 0.5) * w[4 + i]), { atol: 1e-5 }, 'IG of a linear model');
    kiln.dispose([x, baseline, ig]);
    model.dispose();
  });

  it('integrated gradients satisfy completeness on a nonlinear MLP', async () => {
    const model = new kiln.nn.Sequential(new kiln.nn.Linear(6, 16, { seed: 9 }), new kiln.nn.Tanh(), new kiln.nn.Linear(16, 3, { seed: 10 }));
    const x = kiln.randn([3, 6], { seed: 11 });
    const targets = [0, 2, 1];
    const ig = kiln.interpret.integratedGradients(model, x, { target: targets, steps: 64 });
    const igRows = await read(ig.sum(1));
    const scores = await read(model.forward(x));
    const base = await read(model.forward(kiln.zeros([1, 6])));
    for (let i = 0; i < 3; i++) {
      const expected = scores[i * 3 + targets[i]] - base[targets[i]];
      expect(Math.abs(igRows[i] - expected), `example ${i}: sum of attributions ${igRows[i]} vs score difference ${expected}`).toBeLessThan(
        0.01 * Math.abs(expected) + 1e-3,
      );
    }
    // A one-step rule is visibly worse, so the check above can fail.
    const coarse = await read(kiln.interpret.integratedGradients(model, x, { target: targets, steps: 1 }).sum(1));
    const coarseError = Math.max(...coarse.map((v, i) => Math.abs(v - (scores[i * 3 + targets[i]] - base[targets[i]]))));
    expect(coarseError).toBeGreaterThan(1e-3);
    kiln.dispose([x, ig]);
    model.dispose();
  });

  it('bad targets and baselines are named', () => {
    const model = new kiln.nn.Linear(2, 3, { seed: 1 });
    const x = kiln.randn([2, 2], { seed: 2 });
    expectThrows(() => kiln.interpret.saliency(model, x, { target: 3 }), 'out of range for 3 classes');
    expectThrows(() => kiln.interpret.saliency(model, x, { target: [1] }), 'one int32 class per example');
    expectThrows(() => kiln.interpret.integratedGradients(model, x, { baseline: kiln.zeros([3]) }), 'baseline must be shaped like one example [2]');
    x.dispose();
    model.dispose();
  });
});
