/**
 * Linear probing, the standard measure of a self-supervised representation: freeze the encoder,
 * embed labelled images, fit a linear classifier (multinomial logistic regression) on the
 * training features and report its accuracy on held-out features. A better representation
 * makes the classes more linearly separable.
 */

import { noGrad } from '../autograd.js';
import { tidy } from '../engine.js';
import { Linear } from '../nn/linear.js';
import { crossEntropy } from '../losses.js';
import { tensor } from '../ops/creation.js';
import { Adam } from '../optim/rules.js';
import type { Tensor } from '../tensor.js';
import { gatherLabels, gatherRows } from '../data/split.js';
import { Random } from '../data/random.js';

/** What the probe needs from an encoder: images [B, ...imageShape] -> features [B, dim]. */
export interface Encoder {
  /** Maps a batch of images [batch, ...imageShape] to one feature vector each: [batch, dim]. */
  forward(x: Tensor): Tensor;
  /** Switches to inference mode (dropout off, batch norm on running statistics) before embedding. */
  eval(): unknown;
}

/**
 * Features of every image, computed in eval mode without gradients, `batchSize` at a time.
 * images: [N · prod(imageShape)] values -> { features: [N · dim] values, dim }.
 */
export function embed(encoder: Encoder, images: Float32Array, imageShape: number[], batchSize = 256): { features: Float32Array; dim: number } {
  const size = imageShape.reduce((a, b) => a * b, 1);
  const n = images.length / size;
  if (!Number.isInteger(n) || n === 0) throw new Error(`embed: ${images.length} values are not whole images of shape [${imageShape.join(', ')}]`);
  encoder.eval();
  const parts: Float32Array[] = [];
  let dim = 0;
  for (let start = 0; start < n; start += batchSize) {
    const rows = Math.min(batchSize, n - start);
    noGrad(() =>
      tidy(() => {
        const out = encoder.forward(tensor(images.subarray(start * size, (start + rows) * size), [rows, ...imageShape]));
        if (out.shape.length !== 2 || out.shape[0] !== rows) throw new Error(`embed: the encoder must map [batch, ...] to features [batch, dim], got [${out.shape.join(', ')}]`);
        dim = out.shape[1]!;
        parts.push(Float32Array.from(out.dataSync()));
      }),
    );
  }
  const features = new Float32Array(n * dim);
  parts.reduce((offset, p) => (features.set(p, offset), offset + p.length), 0);
  return { features, dim };
}

/** Frozen-encoder features and labels to probe, flattened row-major as {@link embed} returns them. */
export interface LinearProbeData {
  /** [N · dim] training features and their labels [N]. */
  trainFeatures: Float32Array;
  trainLabels: Int32Array;
  /** [M · dim] held-out features and labels [M]. */
  testFeatures: Float32Array;
  testLabels: Int32Array;
  dim: number;
  classes: number;
}

/** How the probe's linear classifier is trained: epochs, Adam's learning rate, batch size, seed. */
export interface LinearProbeOptions {
  /** Passes over the training features (default 100). */
  epochs?: number;
  /** Adam's learning rate (default 1e-2). */
  lr?: number;
  /** Feature rows per Adam step (default 256). */
  batchSize?: number;
  /** Seeds the classifier's initial weights and the shuffling of the rows (default 0). */
  seed?: number;
}

/** Accuracy of argmax(logits) against labels. logits: [N, classes] */
function accuracy(logits: Tensor, labels: Int32Array): number {
  const v = logits.dataSync();
  const c = logits.shape[1]!;
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    let best = 0;
    for (let k = 1; k < c; k++) if (v[i * c + k]! > v[i * c + best]!) best = k;
    if (best === labels[i]) correct++;
  }
  return correct / labels.length;
}

/**
 * Trains a linear classifier on standardized training features (each feature scaled by the
 * training mean and deviation, so a probe's learning rate suits any encoder's scale) and returns
 * its train and test accuracy.
 */
export function linearProbe(data: LinearProbeData, options: LinearProbeOptions = {}): { trainAccuracy: number; testAccuracy: number } {
  const { dim, classes } = data;
  const n = data.trainLabels.length;
  if (data.trainFeatures.length !== n * dim || data.testFeatures.length !== data.testLabels.length * dim) {
    throw new Error(`linearProbe: features must be [N · ${dim}] for N labels (train ${data.trainFeatures.length} values for ${n} labels, test ${data.testFeatures.length} for ${data.testLabels.length})`);
  }
  const mean = new Float64Array(dim);
  const sq = new Float64Array(dim);
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) mean[j]! += data.trainFeatures[i * dim + j]! / n;
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) sq[j]! += (data.trainFeatures[i * dim + j]! - mean[j]!) ** 2 / n;
  const std = sq.map((v) => Math.sqrt(v) + 1e-6);
  const standardize = (f: Float32Array) => f.map((v, k) => (v - mean[k % dim]!) / std[k % dim]!);
  const train = standardize(data.trainFeatures);
  const test = standardize(data.testFeatures);

  const probe = new Linear(dim, classes, { seed: options.seed ?? 0 });
  const optimizer = new Adam(probe.parameters(), { lr: options.lr ?? 1e-2 });
  const rng = new Random(options.seed ?? 0);
  const batch = options.batchSize ?? 256;
  try {
    for (let epoch = 0; epoch < (options.epochs ?? 100); epoch++) {
      const order = rng.permutation(n);
      for (let s = 0; s < n; s += batch) {
        const idx = order.subarray(s, Math.min(n, s + batch));
        tidy(() => {
          optimizer.zeroGrad();
          const x = tensor(gatherRows(train, dim, idx), [idx.length, dim]);
          const y = tensor(Int32Array.from(gatherLabels(data.trainLabels, idx)), [idx.length]);
          crossEntropy(probe.forward(x), y).backward();
          optimizer.step();
        });
      }
    }
    const score = (f: Float32Array, labels: Int32Array) => noGrad(() => tidy(() => accuracy(probe.forward(tensor(f, [labels.length, dim])), labels)));
    return { trainAccuracy: score(train, data.trainLabels), testAccuracy: score(test, data.testLabels) };
  } finally {
    optimizer.dispose();
    probe.dispose();
  }
}
