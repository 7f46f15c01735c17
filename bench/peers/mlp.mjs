// The MLP training-step workloads' shared model and data, so every library trains the same network
// from the same starting point on the same batch: 784-512 (ReLU) - 10, softmax cross-entropy,
// batch 128, fixed random inputs N(0, 1) and random integer labels.
//
// Initialization: He normal for the hidden layer (std sqrt(2 / 784), for ReLU), LeCun normal for
// the output layer (std sqrt(1 / 512)), zero biases. Weights are stored row-major as
// w1 [inputs, hidden] and w2 [hidden, classes] (y = x·w1 + b1), as Kiln and tfjs take them; the
// brain.js and convnetjs peers copy them into their per-neuron layouts.
import { checkFirstStepLoss, crossEntropyOf, randomNormal } from './common.mjs';

/** `n` integers uniform in [0, max) (xorshift32, seeded). */
export function randomInts(n, max, seed) {
  let s = seed >>> 0 || 1;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = Math.floor((s / 4294967296) * max);
  }
  return out;
}

const scaled = (a, s) => {
  for (let i = 0; i < a.length; i++) a[i] *= s;
  return a;
};

const cache = new Map();

/**
 * The batch and the initial parameters for `params` = { batch, inputs, hidden, classes }, as
 * Float32Arrays (labels as Int32Array, also as a one-hot Float32Array [batch, classes]).
 * The same objects every call: peers copy them, never write to them.
 */
export function mlpSetup({ batch, inputs, hidden, classes }) {
  const key = `${batch},${inputs},${hidden},${classes}`;
  if (!cache.has(key)) {
    const labels = randomInts(batch, classes, 7);
    const oneHot = new Float32Array(batch * classes);
    labels.forEach((c, i) => (oneHot[i * classes + c] = 1));
    cache.set(key, {
      x: randomNormal(batch * inputs, 21),
      labels,
      oneHot,
      w1: scaled(randomNormal(inputs * hidden, 22), Math.sqrt(2 / inputs)),
      b1: new Float32Array(hidden),
      w2: scaled(randomNormal(hidden * classes, 23), Math.sqrt(1 / hidden)),
      b2: new Float32Array(classes),
    });
  }
  return cache.get(key);
}

const referenceLosses = new Map();

/** Mean softmax cross-entropy of the initial model on the batch, in float64 (computed once). */
export function referenceLoss(params) {
  const { batch, inputs, hidden, classes } = params;
  const key = `${batch},${inputs},${hidden},${classes}`;
  if (!referenceLosses.has(key)) {
    const { x, labels, w1, b1, w2, b2 } = mlpSetup(params);
    const h = new Float64Array(hidden);
    const z = new Float64Array(classes);
    let total = 0;
    for (let r = 0; r < batch; r++) {
      h.set(b1);
      for (let i = 0; i < inputs; i++) {
        const xi = x[r * inputs + i];
        const row = i * hidden;
        for (let j = 0; j < hidden; j++) h[j] += xi * w1[row + j];
      }
      z.set(b2);
      for (let j = 0; j < hidden; j++) {
        const hj = h[j] > 0 ? h[j] : 0;
        for (let c = 0; c < classes; c++) z[c] += hj * w2[j * classes + c];
      }
      total += crossEntropyOf(z, labels[r]);
    }
    referenceLosses.set(key, total / batch);
  }
  return referenceLosses.get(key);
}

/** Throws unless `loss` (a library's loss on the first step) matches the float64 reference. */
export function checkFirstLoss(what, loss, params) {
  checkFirstStepLoss(what, loss, referenceLoss(params), 'model');
}
