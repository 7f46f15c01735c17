// The MNIST set-up shared by the smaller examples: all 70,000 digits, the same stratified 70/15/15
// split as the main job (examples/mnist.mjs, which spells each step out), pixels scaled /255.
import * as kiln from 'kiln-ml';

const { data } = kiln;

/** All 70,000 digits in one array (MNIST's training file, then its test file), as the main job does. */
export function allDigits() {
  const mnist = data.loadMnist();
  const images = new Uint8Array(mnist.trainImages.length + mnist.testImages.length);
  images.set(mnist.trainImages);
  images.set(mnist.testImages, mnist.trainImages.length);
  const labels = new Uint8Array(mnist.trainLabels.length + mnist.testLabels.length);
  labels.set(mnist.trainLabels);
  labels.set(mnist.testLabels, mnist.trainLabels.length);
  return { mnist, pixels: mnist.rows * mnist.cols, images, labels };
}

/**
 * Returns { pixels, train, val, test } where each split is { x: Float32Array, y: Int32Array, n }.
 * `digits` keeps only those classes, relabelled 0..k-1 in the order given; `perClass` keeps the
 * first `perClass` training examples of each class (a small-data task).
 */
export function mnistSplits({ seed = 42, digits, perClass } = {}) {
  const { pixels, images, labels } = allDigits();
  const split = data.trainValTestSplit(labels, { ratios: [0.7, 0.15, 0.15], stratify: true, seed });
  const relabel = digits ? new Map(digits.map((d, i) => [d, i])) : null;
  const take = (indices, limit) => {
    const seen = new Map();
    const kept = Array.from(indices).filter((i) => {
      if (relabel && !relabel.has(labels[i])) return false;
      const count = seen.get(labels[i]) ?? 0;
      if (limit !== undefined && count >= limit) return false;
      seen.set(labels[i], count + 1);
      return true;
    });
    const x = data.gatherRows(images, pixels, Int32Array.from(kept));
    data.scale(x, 1 / 255, x);
    const y = Int32Array.from(kept, (i) => (relabel ? relabel.get(labels[i]) : labels[i]));
    return { x, y, n: kept.length };
  };
  return { pixels, train: take(split.train, perClass), val: take(split.val), test: take(split.test) };
}

/** A DataLoader over one split. */
export function loader(split, pixels, options) {
  return new data.DataLoader(new data.TensorDataset(split.x, [pixels], split.y), options);
}
