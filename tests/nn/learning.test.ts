/**
 * End to end: a 2-layer MLP trained with hand-written SGD must separate two concentric circles
 * (not linearly separable), and kiln.fit with Adam must train the same kind of model. A broken
 * Linear, activation or gradient fails these.
 */
import { expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import * as nn from '../../ts/nn/index.js';
import type { Tensor } from '../../ts/index.js';
import { forEachBackend } from '../backends.js';
import { prng, read, readOf } from '../helpers.js';

/** Inner disc (r < 0.5, class 0) and outer ring (0.8 < r < 1.2, class 1), seeded. */
function circles(n: number, seed: number): { x: Tensor; y: Tensor } {
  const rand = prng(seed);
  const xs = new Float32Array(2 * n);
  const ys = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const label = i % 2;
    const r = label === 0 ? 0.5 * rand() : 0.8 + 0.4 * rand();
    const a = 2 * Math.PI * rand();
    xs[2 * i] = r * Math.cos(a);
    xs[2 * i + 1] = r * Math.sin(a);
    ys[i] = label;
  }
  return { x: kiln.tensor(xs, [n, 2]), y: kiln.tensor(ys) };
}

async function accuracy(model: nn.Module, x: Tensor, y: Tensor): Promise<number> {
  return (await readOf(() => kiln.noGrad(() => model.forward(x).argmax(1).equal(y).cast('float32').mean())))[0];
}

forEachBackend(() => {
  it('a 2-layer MLP learns concentric circles with manual SGD (> 95% on held-out points)', async () => {
    const before = kiln.memory().numTensors;
    const train = circles(400, 1);
    const test = circles(400, 2);
    const model = new nn.Sequential(new nn.Linear(2, 32, { seed: 1 }), new nn.ReLU(), new nn.Linear(32, 2, { seed: 2 }));
    const initial = await accuracy(model, test.x, test.y);
    for (let step = 0; step < 300; step++) {
      kiln.tidy(() => {
        kiln.crossEntropy(model.forward(train.x), train.y).backward();
        kiln.noGrad(() => {
          for (const [name, p] of model.namedParameters()) model.setParameter(name, p.sub(p.grad!.mul(0.5)));
        });
      });
    }
    const trained = await accuracy(model, test.x, test.y);
    expect(initial).toBeLessThan(0.8);
    expect(trained, `test accuracy after 300 steps (initial ${initial})`).toBeGreaterThan(0.95);
    model.dispose();
    kiln.dispose([train.x, train.y, test.x, test.y]);
    expect(kiln.memory().numTensors).toBe(before);
  });

  it('kiln.fit trains an nn model with Adam, BatchNorm and Dropout', async () => {
    const train = circles(512, 3);
    const test = circles(256, 4);
    const model = new nn.Sequential(
      new nn.Linear(2, 32, { seed: 3 }),
      new nn.BatchNorm1d(32),
      new nn.Tanh(),
      new nn.Dropout(0.1),
      new nn.Linear(32, 2, { seed: 4 }),
    );
    const optimizer = new kiln.optim.Adam(model.parameters(), { lr: 0.02 });
    const xs = Float32Array.from(await read(train.x));
    const ys = Int32Array.from(await read(train.y));
    const batches = Array.from({ length: 8 }, (_, b) => b);
    const data = {
      length: batches.length,
      *[Symbol.iterator]() {
        for (const b of batches) {
          yield { x: kiln.tensor(xs.slice(b * 128, b * 128 + 128) as Float32Array, [64, 2]), y: kiln.tensor(ys.slice(b * 64, b * 64 + 64) as Int32Array) };
        }
      },
    };
    const history = await kiln.fit(model, data, { epochs: 25, loss: (o, t) => kiln.crossEntropy(o, t), optimizer, verbose: 0 });
    expect(history.epochs[24].loss).toBeLessThan(history.epochs[0].loss);
    expect(model.training, 'fit leaves the model in training mode').toBe(true);
    model.eval();
    expect(await accuracy(model, test.x, test.y)).toBeGreaterThan(0.95);
    optimizer.dispose();
    model.dispose();
    kiln.dispose([train.x, train.y, test.x, test.y]);
  });
});
