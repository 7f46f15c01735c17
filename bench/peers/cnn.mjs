// The CNN training-step workload (CNN family): the classic small MNIST network
//   conv 3x3x32 relu - maxpool 2 - conv 3x3x64 relu - maxpool 2 - dense 128 relu - dense 10
// on 28x28x1 inputs ('valid' convolutions: 28 -> 26 -> 13 -> 11 -> 5, so dense 1600 -> 128),
// softmax cross-entropy, Adam. Every library trains it from the same weights on the same batch, and
// its first-step loss is checked against a float64 reference.
//
// Weights are generated in PyTorch's layout (conv [out, in, 3, 3]; dense [out, in] with the
// flattened input in (channel, y, x) order, as NCHW flattens). tfjs (NHWC) and convnetjs (depth
// last) flatten in (y, x, channel) order and take conv filters as [kh, kw, in, out] / per-filter
// (y, x, depth) volumes, so they get the same numbers permuted.
import { timeStepRuns } from '../timing.mjs';
import { checkFirstStepLoss, crossEntropyOf, kilnStep, randomNormal } from './common.mjs';
import { randomInts } from './mlp.mjs';

/** `n` values N(0, 2 / fanIn): He normal, for layers followed by ReLU. */
const he = (n, fanIn, seed) => randomNormal(n, seed).map((v) => v * Math.sqrt(2 / fanIn));

/** Output side of the second pooling layer: 28 -> conv 26 -> pool 13 -> conv 11 -> pool 5. */
const FINAL = 5;

const cache = new Map();

/**
 * The batch and initial parameters for params = { batch, size, classes }: x [batch, 1, 28, 28]
 * (also the layout of NHWC with one channel), labels (and one-hot), and in PyTorch's layout
 * c1w [32, 1, 3, 3], c1b, c2w [64, 32, 3, 3], c2b, f1w [128, 1600], f1b, f2w [10, 128], f2b.
 * Shared, never written.
 */
export function cnnSetup({ batch, size, classes }) {
  const key = `${batch},${size},${classes}`;
  if (!cache.has(key)) {
    const labels = randomInts(batch, classes, 41);
    const oneHot = new Float32Array(batch * classes);
    labels.forEach((c, i) => (oneHot[i * classes + c] = 1));
    const flat = 64 * FINAL * FINAL;
    cache.set(key, {
      x: randomNormal(batch * size * size, 40),
      labels,
      oneHot,
      c1w: he(32 * 9, 9, 42),
      c1b: new Float32Array(32),
      c2w: he(64 * 32 * 9, 32 * 9, 43),
      c2b: new Float32Array(64),
      f1w: he(128 * flat, flat, 44),
      f1b: new Float32Array(128),
      f2w: randomNormal(classes * 128, 45).map((v) => v / Math.sqrt(128)),
      f2b: new Float32Array(classes),
    });
  }
  return cache.get(key);
}

/** Conv weight [out, in, 3, 3] -> [3, 3, in, out] (tfjs). */
export function convToHwio(w, out, inC) {
  const r = new Float32Array(w.length);
  for (let o = 0; o < out; o++) for (let i = 0; i < inC; i++) for (let k = 0; k < 9; k++) r[(k * inC + i) * out + o] = w[(o * inC + i) * 9 + k];
  return r;
}

/** Index of feature (c, y, x) of the last 64x5x5 map in (y, x, c) order (NHWC / convnetjs). */
export const hwcIndex = (c, y, x) => (y * FINAL + x) * 64 + c;

/** Dense weight [out, in] with NCHW-ordered inputs -> [in, out] with NHWC-ordered inputs (tfjs). */
export function denseToNhwcInOut(w, out) {
  const flat = 64 * FINAL * FINAL;
  const r = new Float32Array(w.length);
  for (let o = 0; o < out; o++) {
    for (let c = 0; c < 64; c++) for (let y = 0; y < FINAL; y++) for (let x = 0; x < FINAL; x++) r[hwcIndex(c, y, x) * out + o] = w[o * flat + (c * FINAL + y) * FINAL + x];
  }
  return r;
}

/** [out, in] -> [in, out]. */
export function transpose(w, rows, cols) {
  const r = new Float32Array(w.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) r[j * rows + i] = w[i * cols + j];
  return r;
}

// ---- the float64 reference ----

/** 'valid' 3x3 convolution + bias + ReLU of one CHW image, in float64. */
function convRelu(x, c, h, w, weight, bias, out) {
  const oh = h - 2;
  const ow = w - 2;
  const y = new Float64Array(out * oh * ow);
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        let s = bias[o];
        for (let ci = 0; ci < c; ci++) {
          for (let ki = 0; ki < 3; ki++) for (let kj = 0; kj < 3; kj++) s += weight[((o * c + ci) * 3 + ki) * 3 + kj] * x[(ci * h + i + ki) * w + j + kj];
        }
        y[(o * oh + i) * ow + j] = Math.max(0, s);
      }
    }
  }
  return y;
}

/** 2x2 max pooling, stride 2 (floor), of a CHW map. */
function maxPool(x, c, h, w) {
  const oh = Math.floor(h / 2);
  const ow = Math.floor(w / 2);
  const y = new Float64Array(c * oh * ow);
  for (let ch = 0; ch < c; ch++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        const at = (a, b) => x[(ch * h + 2 * i + a) * w + 2 * j + b];
        y[(ch * oh + i) * ow + j] = Math.max(at(0, 0), at(0, 1), at(1, 0), at(1, 1));
      }
    }
  }
  return y;
}

const references = new Map();

/** Mean cross-entropy of the initial model on the batch, in float64 (computed once). */
function referenceLoss(params) {
  const { batch, size, classes } = params;
  const key = JSON.stringify(params);
  if (!references.has(key)) {
    const d = cnnSetup(params);
    const flat = 64 * FINAL * FINAL;
    let total = 0;
    for (let b = 0; b < batch; b++) {
      const img = d.x.subarray(b * size * size, (b + 1) * size * size);
      const p1 = maxPool(convRelu(img, 1, size, size, d.c1w, d.c1b, 32), 32, size - 2, size - 2);
      const s1 = Math.floor((size - 2) / 2);
      const p2 = maxPool(convRelu(p1, 32, s1, s1, d.c2w, d.c2b, 64), 64, s1 - 2, s1 - 2);
      const h = Array.from({ length: 128 }, (_, o) => Math.max(0, p2.reduce((s, v, i) => s + v * d.f1w[o * flat + i], d.f1b[o])));
      const z = Array.from({ length: classes }, (_, k) => h.reduce((s, v, j) => s + v * d.f2w[k * 128 + j], d.f2b[k]));
      total += crossEntropyOf(z, d.labels[b]);
    }
    references.set(key, total / batch);
  }
  return references.get(key);
}

/** Throws unless `loss` (a library's first-step loss) matches the float64 reference. */
export function checkCnnFirstLoss(what, loss, params) {
  checkFirstStepLoss(what, loss, referenceLoss(params), 'CNN');
}

// ---- Kiln and tfjs (convnetjs is in peers/convnetjs.mjs) ----

/**
 * One training step of the CNN as an nn.Sequential with kiln.optim.Adam on Kiln's active backend
 * (the native and WASM peers share it), written as a user would: tidy, zeroGrad, forward, loss,
 * backward, step, the loss read back. Checked on the first step; returns seconds per step.
 */
export function kilnCnnTrain(k, params) {
  const { batch, size, classes, lr } = params;
  const d = cnnSetup(params);
  const { nn } = k;
  const model = new nn.Sequential(
    new nn.Conv2d(1, 32, 3), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Conv2d(32, 64, 3), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Flatten(), new nn.Linear(64 * FINAL * FINAL, 128), new nn.ReLU(), new nn.Linear(128, classes),
  );
  const state = {
    '0.weight': k.tensor(d.c1w, [32, 1, 3, 3]), '0.bias': k.tensor(d.c1b, [32]),
    '3.weight': k.tensor(d.c2w, [64, 32, 3, 3]), '3.bias': k.tensor(d.c2b, [64]),
    '7.weight': k.tensor(d.f1w, [128, 64 * FINAL * FINAL]), '7.bias': k.tensor(d.f1b, [128]),
    '9.weight': k.tensor(d.f2w, [classes, 128]), '9.bias': k.tensor(d.f2b, [classes]),
  };
  model.loadStateDict(state);
  k.dispose(Object.values(state));
  const x = k.tensor(d.x, [batch, 1, size, size]);
  const y = k.tensor(d.labels, [batch], 'int32');
  const opt = new k.optim.Adam(model.parameters(), { lr });
  const step = kilnStep(k, opt, () => model.forward(x), y);
  try {
    checkCnnFirstLoss(`kiln (${k.getBackend()}) cnn check`, step(), params);
    return timeStepRuns(step);
  } finally {
    opt.dispose();
    model.dispose();
    k.dispose([x, y]);
  }
}

/**
 * The same step in tfjs-layers (`tfl`; `tf` is tfjs-core): conv2d / maxPooling2d / flatten / dense
 * layers on NHWC input, applied eagerly inside optimizer.minimize, the loss read back.
 */
export function tfjsCnnTrain(tf, tfl, params) {
  const { batch, size, classes, lr } = params;
  const d = cnnSetup(params);
  const zeros = { kernelInitializer: 'zeros', biasInitializer: 'zeros' };
  const layers = [
    tfl.layers.conv2d({ filters: 32, kernelSize: 3, activation: 'relu', inputShape: [size, size, 1], ...zeros }),
    tfl.layers.maxPooling2d({ poolSize: 2 }),
    tfl.layers.conv2d({ filters: 64, kernelSize: 3, activation: 'relu', ...zeros }),
    tfl.layers.maxPooling2d({ poolSize: 2 }),
    tfl.layers.flatten(),
    tfl.layers.dense({ units: 128, activation: 'relu', ...zeros }),
    tfl.layers.dense({ units: classes, ...zeros }),
  ];
  const model = tfl.sequential({ layers });
  tf.tidy(() => {
    layers[0].setWeights([tf.tensor4d(convToHwio(d.c1w, 32, 1), [3, 3, 1, 32]), tf.tensor1d(d.c1b)]);
    layers[2].setWeights([tf.tensor4d(convToHwio(d.c2w, 64, 32), [3, 3, 32, 64]), tf.tensor1d(d.c2b)]);
    layers[5].setWeights([tf.tensor2d(denseToNhwcInOut(d.f1w, 128), [64 * FINAL * FINAL, 128]), tf.tensor1d(d.f1b)]);
    layers[6].setWeights([tf.tensor2d(transpose(d.f2w, classes, 128), [128, classes]), tf.tensor1d(d.f2b)]);
  });
  const x = tf.tensor4d(d.x, [batch, size, size, 1]);
  const y = tf.tensor2d(d.oneHot, [batch, classes]);
  const vars = model.trainableWeights.map((w) => w.read());
  const opt = tf.train.adam(lr);
  const step = () => tf.tidy(() => opt.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x)), true, vars).dataSync()[0]);
  try {
    checkCnnFirstLoss(`tfjs ${tf.getBackend()} cnn check`, step(), params);
    return timeStepRuns(step);
  } finally {
    opt.dispose();
    model.dispose();
    tf.dispose([x, y]);
  }
}
