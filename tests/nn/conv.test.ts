/**
 * nn.Conv2d and nn.ConvTranspose2d: shapes, PyTorch's parameter layout and init bounds, the
 * forward against kiln.conv2d, save -> load through kiln.saveModel, and a small CNN that has to
 * learn real MNIST digits (3 vs 8) through its convolutions.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import * as nn from '../../ts/nn/index.js';
import type { Tensor } from '../../ts/index.js';
import { loadMnist, type Mnist } from '../../ts/data/index.js';
import { forEachBackend, heavyIt } from '../backends.js';
import { T, assertClose, expectThrows, randND, read } from '../helpers.js';

let mnist: Mnist;
beforeAll(() => {
  mnist = loadMnist();
});

/** The first `count` images of digits a (class 0) and b (class 1), scaled to [0, 1]. [count, 1, 28, 28] */
function digits(images: Uint8Array, labels: Uint8Array, a: number, b: number, count: number): { x: Tensor; y: Tensor } {
  const xs = new Float32Array(count * 784);
  const ys = new Int32Array(count);
  let n = 0;
  for (let i = 0; i < labels.length && n < count; i++) {
    if (labels[i] !== a && labels[i] !== b) continue;
    for (let j = 0; j < 784; j++) xs[n * 784 + j] = images[i * 784 + j] / 255;
    ys[n++] = labels[i] === a ? 0 : 1;
  }
  return { x: kiln.tensor(xs, [count, 1, 28, 28]), y: kiln.tensor(ys) };
}

/**
 * Two strided convolutions, then the mean over space and a 16 -> 2 linear layer. The spatial mean
 * leaves the linear layer only 16 numbers per image, so the convolutions must learn the
 * features: with them frozen at their random init this model stays near chance.
 */
class TinyCnn extends nn.Module {
  readonly c1 = new nn.Conv2d(1, 8, 5, { stride: 2, seed: 1 });
  readonly c2 = new nn.Conv2d(8, 16, 3, { stride: 2, seed: 2 });
  readonly fc = new nn.Linear(16, 2, { seed: 3 });
  forward(x: Tensor): Tensor {
    return this.fc.forward(this.c2.forward(this.c1.forward(x).relu()).relu().mean([2, 3]));
  }
}

forEachBackend((backend) => {
  const heavy = heavyIt(backend);
  it('Conv2d: parameter layout, init bounds, output shapes, forward = kiln.conv2d', async () => {
    const conv = new nn.Conv2d(4, 6, [3, 2], { stride: 2, padding: 'same', groups: 2, seed: 7 });
    expect(conv.weight.shape).toEqual([6, 2, 3, 2]);
    expect(conv.bias!.shape).toEqual([6]);
    // U(±1/√fanIn), fanIn = (4 / 2)·3·2 = 12, for both (PyTorch's default).
    const bound = 1 / Math.sqrt(12);
    for (const p of [conv.weight, conv.bias!]) {
      const v = await read(p);
      expect(Math.max(...v.map(Math.abs))).toBeLessThanOrEqual(bound);
      expect(Math.max(...v.map(Math.abs))).toBeGreaterThan(0.6 * bound);
    }
    const x = T(randND([2, 4, 9, 8], 1));
    const y = conv.forward(x);
    expect(y.shape).toEqual([2, 6, 5, 4]);
    const want = kiln.conv2d(x, conv.weight, { stride: 2, padding: 'same', groups: 2, bias: conv.bias });
    assertClose(await read(y), await read(want), { atol: 0, rtol: 0 }, 'layer vs function');
    expect(new nn.Conv2d(3, 5, 3, { bias: false }).bias).toBeNull();
    expect(new nn.Conv2d(3, 5, 3, { padding: 'valid' }).forward(T(randND([1, 3, 7, 6], 2))).shape).toEqual([1, 5, 5, 4]);
    expect(new nn.Conv2d(3, 5, 3, { dilation: 2, padding: 2 }).forward(T(randND([1, 3, 7, 6], 2))).shape).toEqual([1, 5, 7, 6]);
    conv.dispose();
  });

  it('ConvTranspose2d: weight [in, out/groups, kh, kw], fanIn from dim 1, output sizes', async () => {
    const up = new nn.ConvTranspose2d(4, 6, 3, { stride: 2, padding: 1, outputPadding: 1, groups: 2, seed: 8 });
    expect(up.weight.shape).toEqual([4, 3, 3, 3]);
    const bound = 1 / Math.sqrt(3 * 9);
    expect(Math.max(...(await read(up.weight)).map(Math.abs))).toBeLessThanOrEqual(bound);
    const x = T(randND([2, 4, 5, 5], 3));
    expect(up.forward(x).shape).toEqual([2, 6, 10, 10]);
    const same = new nn.ConvTranspose2d(4, 2, 4, { stride: 2, padding: 'same' });
    expect(same.forward(x).shape).toEqual([2, 2, 10, 10]);
    up.dispose();
    same.dispose();
  });

  it('layers reject bad configurations and inputs with clear messages', () => {
    expectThrows(() => new nn.Conv2d(3, 4, 3, { groups: 2 }), 'Conv2d', 'groups must be a positive integer dividing inChannels (3)');
    expectThrows(() => new nn.Conv2d(0, 4, 3), 'Conv2d', 'inChannels must be a positive integer');
    expectThrows(() => new nn.Conv2d(3, 4, 0), 'Conv2d', 'kernelSize must be an integer >= 1');
    expectThrows(() => new nn.Conv2d(3, 4, 3, { padding: 'half' as never }), 'Conv2d', "padding must be 'same', 'valid'");
    expectThrows(() => new nn.ConvTranspose2d(3, 4, 3, { padding: 'same', outputPadding: 1 }), 'ConvTranspose2d', 'cannot be combined');
    const conv = new nn.Conv2d(3, 4, 3);
    expectThrows(() => conv.forward(T(randND([2, 2, 8, 8], 1))), 'Conv2d(3 -> 4, kernel 3x3)', 'expected input [batch, 3, height, width]', 'float32 [2, 2, 8, 8]');
    expectThrows(() => conv.forward(T(randND([3, 8, 8], 1))), 'Conv2d(3 -> 4, kernel 3x3)', '[3, 8, 8]');
    expectThrows(() => conv.forward(T(randND([1, 3, 2, 2], 1))), 'conv2d', 'larger than the padded input');
    conv.dispose();
  });

  it('summary() lists conv layers with their output shapes and parameter counts', () => {
    const before = kiln.memory().numTensors;
    const model = new nn.Sequential(new nn.Conv2d(1, 8, 3, { stride: 2, padding: 'same' }), new nn.ReLU(), new nn.ConvTranspose2d(8, 4, 2, { stride: 2 }));
    const text = model.summary([1, 28, 28], { print: false });
    expect(text).toMatch(/0 \(Conv2d\)\s+\[1, 8, 14, 14\]\s+80$/m);
    expect(text).toMatch(/2 \(ConvTranspose2d\)\s+\[1, 4, 28, 28\]\s+132$/m);
    model.dispose();
    expect(kiln.memory().numTensors).toBe(before);
  });

  it('a model with Conv2d and ConvTranspose2d saves and loads through kiln.saveModel', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-conv-model-'));
    const before = kiln.memory().numTensors;
    const build = (seed: number) =>
      new nn.Sequential(
        new nn.Conv2d(1, 4, 3, { padding: 'same', seed }),
        new nn.ReLU(),
        new nn.ConvTranspose2d(4, 2, 2, { stride: 2, seed: seed + 1 }),
        new nn.Flatten(),
        new nn.Linear(2 * 12 * 12, 3, { seed: seed + 2 }),
      );
    const model = build(1);
    expect(Object.keys(model.stateDict())).toEqual(['0.weight', '0.bias', '2.weight', '2.bias', '4.weight', '4.bias']);
    const x = T(randND([2, 1, 6, 6], 5));
    const want = kiln.tidy(() => model.forward(x));
    kiln.saveModel(join(dir, 'cnn'), { stateDict: model.stateDict(), config: { kind: 'cnn' } });
    const fresh = build(2);
    const { stateDict } = kiln.loadModel(join(dir, 'cnn'));
    fresh.loadStateDict(stateDict);
    kiln.dispose(stateDict);
    const got = kiln.tidy(() => fresh.forward(x));
    assertClose(await read(got), await read(want), { atol: 0, rtol: 0 }, 'loaded model');
    kiln.dispose([x, want, got]);
    model.dispose();
    fresh.dispose();
    expect(kiln.memory().numTensors).toBe(before);
    rmSync(dir, { recursive: true, force: true });
  });

  heavy('a tiny CNN learns MNIST 3 vs 8 through its convolutions (> 92% held out; frozen convolutions stay < 80%)', () => {
    const before = kiln.memory().numTensors;
    const train = digits(mnist.trainImages, mnist.trainLabels, 3, 8, 400);
    const test = digits(mnist.testImages, mnist.testLabels, 3, 8, 400);
    const accuracyAfterTraining = (frozen: boolean): number => {
      const model = new TinyCnn();
      const optimizer = new kiln.optim.Adam(frozen ? model.fc.parameters() : model.parameters(), { lr: 0.02 });
      for (let step = 0; step < 60; step++) {
        kiln.tidy(() => {
          optimizer.zeroGrad();
          kiln.crossEntropy(model.forward(train.x), train.y).backward();
          optimizer.step();
        });
      }
      const acc = kiln.noGrad(() => kiln.tidy(() => model.forward(test.x).argmax(1).equal(test.y).cast('float32').mean().dataSync()[0]));
      optimizer.dispose();
      model.dispose();
      return acc;
    };
    const trained = accuracyAfterTraining(false);
    const frozen = accuracyAfterTraining(true);
    expect(trained, `held-out accuracy with trained convolutions (frozen: ${frozen})`).toBeGreaterThan(0.92);
    expect(frozen, 'the control: only the linear layer trained').toBeLessThan(0.8);
    kiln.dispose([train.x, train.y, test.x, test.y]);
    expect(kiln.memory().numTensors).toBe(before);
  });
});
