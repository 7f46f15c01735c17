/**
 * What fine-tuning relies on: a frozen module's parameters get no gradient and no optimizer update,
 * even from optimizers that would move a parameter without one (momentum carried over, decoupled
 * weight decay), and per-group learning rates scale each group's update.
 */
import { describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import type { Tensor } from '../../ts/index.js';
import * as nn from '../../ts/nn/index.js';
import { forEachBackend } from '../backends.js';
import { assertClose, expectEveryTestToFreeItsTensors, read } from '../helpers.js';

class Net extends nn.Module {
  readonly body = new nn.Sequential(new nn.Conv2d(1, 3, 3, { seed: 1 }), new nn.ReLU(), new nn.Flatten());
  readonly head = new nn.Linear(3 * 2 * 2, 2, { seed: 2 });
  forward(x: Tensor): Tensor {
    return this.head.forward(this.body.forward(x));
  }
}

/** The values of `ps`, read asynchronously (the suites also run on WebGPU in a page). */
const snapshot = (ps: Tensor[]) => Promise.all(ps.map((p) => read(p)));

/** The parameters' gradients, read asynchronously (each `p.grad` is a new handle: freed here, as a tidy would). */
async function gradients(ps: Tensor[]): Promise<number[][]> {
  const grads = ps.map((p) => p.grad!);
  try {
    return await snapshot(grads);
  } finally {
    kiln.dispose(grads);
  }
}

forEachBackend(() => {
  expectEveryTestToFreeItsTensors();

  describe('fine-tuning: freeze and parameter groups', () => {
    const x = () => kiln.randn([4, 1, 4, 4], { seed: 3 });
    const y = () => kiln.tensor(Int32Array.from([0, 1, 1, 0]));

    const optimizers: Array<[string, (ps: Tensor[]) => kiln.optim.Optimizer]> = [
      ['SGD momentum 0.9, weightDecay 0.1', (ps) => new kiln.optim.SGD(ps, { lr: 0.1, momentum: 0.9, weightDecay: 0.1 })],
      ['Adam weightDecay 0.1', (ps) => new kiln.optim.Adam(ps, { lr: 0.1, weightDecay: 0.1 })],
      ['AdamW weightDecay 0.1', (ps) => new kiln.optim.AdamW(ps, { lr: 0.1, weightDecay: 0.1 })],
    ];
    for (const [name, make] of optimizers) {
      it(`frozen parameters get no gradient and no update (${name}), then train once unfrozen`, async () => {
        const model = new Net();
        const [xs, ys] = [x(), y()];
        const opt = make(model.parameters());
        const step = () =>
          kiln.tidy(() => {
            opt.zeroGrad();
            kiln.crossEntropy(model.forward(xs), ys).backward();
            opt.step();
          });
        // One step with everything trainable builds momentum / moments for the body ...
        step();
        // ... then frozen: neither that state nor weight decay may move the body.
        model.body.freeze();
        const body = await snapshot(model.body.parameters());
        const head = await snapshot(model.head.parameters());
        for (let i = 0; i < 3; i++) step();
        for (const p of model.body.parameters()) {
          expect(p.requiresGrad).toBe(false);
          expect(p.grad).toBeNull();
        }
        expect(await snapshot(model.body.parameters())).toEqual(body);
        expect(await snapshot(model.head.parameters())).not.toEqual(head);
        model.body.unfreeze();
        step();
        expect(await snapshot(model.body.parameters())).not.toEqual(body);
        opt.dispose();
        model.dispose();
        kiln.dispose([xs, ys]);
      });
    }

    it('per-group learning rates: each group moves by its own lr · gradient (plain SGD)', async () => {
      const model = new Net();
      const [xs, ys] = [x(), y()];
      const groups = [
        { params: model.body.parameters(), lr: 0.01 },
        { params: model.head.parameters(), lr: 0.5 },
      ];
      const opt = new kiln.optim.SGD(groups, { lr: 0.1 });
      const before = await snapshot(model.parameters());
      kiln.tidy(() => {
        opt.zeroGrad();
        kiln.crossEntropy(model.forward(xs), ys).backward();
      });
      const grads = await gradients(model.parameters());
      opt.step();
      const after = await snapshot(model.parameters());
      const lrs = [...groups[0].params.map(() => 0.01), ...groups[1].params.map(() => 0.5)];
      after.forEach((a, i) => {
        assertClose(a, before[i].map((v, j) => v - lrs[i] * grads[i][j]), { atol: 1e-6, rtol: 1e-5 });
      });
      // A schedule changing the base lr keeps the groups' ratio (0.01 / 0.1 and 0.5 / 0.1).
      opt.lr = 0.2;
      const before2 = await snapshot(model.parameters());
      kiln.tidy(() => {
        opt.zeroGrad();
        kiln.crossEntropy(model.forward(xs), ys).backward();
      });
      const grads2 = await gradients(model.parameters());
      opt.step();
      (await snapshot(model.parameters())).forEach((a, i) => {
        assertClose(a, before2[i].map((v, j) => v - 2 * lrs[i] * grads2[i][j]), { atol: 1e-6, rtol: 1e-5 });
      });
      opt.zeroGrad();
      opt.dispose();
      model.dispose();
      kiln.dispose([xs, ys]);
    });
  });
});
