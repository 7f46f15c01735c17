// The LSTM training-step workload (RNN family): an LSTM over a sequence, its last hidden state into
// a dense layer, softmax cross-entropy, Adam. Every library trains the same network from the same
// weights on the same batch, and its first-step loss is checked against a float64 reference.
//
// Weights are generated in PyTorch's layout (w_ih [4H, I], w_hh [4H, H], gates i, f, g, o; one
// bias, b_hh = 0) with the spread of PyTorch's init U(±1/√H); tfjs takes them transposed (kernel [I, 4H],
// recurrentKernel [H, 4H], gates i, f, c, o: the same order) with recurrentActivation 'sigmoid'
// (its default is hardSigmoid, a different model).
import { timeStepRuns } from '../timing.mjs';
import { checkFirstStepLoss, crossEntropyOf, kilnStep, randomNormal } from './common.mjs';
import { randomInts } from './mlp.mjs';

/** `n` values N(0, (bound/√3)²): the spread of PyTorch's U(±bound) init, from the shared seeded normal generator. */
const initial = (n, bound, seed) => randomNormal(n, seed).map((v) => (v * bound) / Math.sqrt(3));

const transpose = (m, rows, cols) => {
  const out = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = m[r * cols + c];
  return out;
};

const cache = new Map();

/**
 * The batch and initial parameters for params = { batch, steps, inputs, hidden, classes }:
 * x [batch, steps, inputs], labels (and one-hot), wIh [4H, I], wHh [4H, H], bias [4H],
 * wOut [classes, hidden] (PyTorch's Linear layout), bOut [classes]. Shared, never written.
 */
export function lstmSetup({ batch, steps, inputs, hidden, classes }) {
  const key = `${batch},${steps},${inputs},${hidden},${classes}`;
  if (!cache.has(key)) {
    const labels = randomInts(batch, classes, 31);
    const oneHot = new Float32Array(batch * classes);
    labels.forEach((c, i) => (oneHot[i * classes + c] = 1));
    const g = 4 * hidden;
    const wIh = initial(g * inputs, 1 / Math.sqrt(hidden), 32);
    const wHh = initial(g * hidden, 1 / Math.sqrt(hidden), 33);
    const wOut = initial(classes * hidden, 1 / Math.sqrt(hidden), 35);
    cache.set(key, {
      x: randomNormal(batch * steps * inputs, 30),
      labels,
      oneHot,
      wIh,
      wHh,
      bias: initial(g, 1 / Math.sqrt(hidden), 34),
      wOut,
      bOut: initial(classes, 1 / Math.sqrt(hidden), 36),
      // tfjs layouts
      kernel: transpose(wIh, g, inputs),
      recurrentKernel: transpose(wHh, g, hidden),
      denseKernel: transpose(wOut, classes, hidden),
    });
  }
  return cache.get(key);
}

const references = new Map();

/** Mean cross-entropy of the initial model on the batch, in float64 (computed once). */
function referenceLoss(params) {
  const { batch, steps, inputs, hidden, classes } = params;
  const key = JSON.stringify(params);
  if (!references.has(key)) {
    const { x, labels, wIh, wHh, bias, wOut, bOut } = lstmSetup(params);
    const sig = (v) => 1 / (1 + Math.exp(-v));
    const g = 4 * hidden;
    let total = 0;
    for (let b = 0; b < batch; b++) {
      let h = new Float64Array(hidden);
      const c = new Float64Array(hidden);
      const pre = new Float64Array(g);
      for (let t = 0; t < steps; t++) {
        const xt = x.subarray((b * steps + t) * inputs, (b * steps + t + 1) * inputs);
        for (let r = 0; r < g; r++) {
          let s = bias[r];
          for (let k = 0; k < inputs; k++) s += wIh[r * inputs + k] * xt[k];
          for (let k = 0; k < hidden; k++) s += wHh[r * hidden + k] * h[k];
          pre[r] = s;
        }
        const next = new Float64Array(hidden);
        for (let j = 0; j < hidden; j++) {
          c[j] = sig(pre[hidden + j]) * c[j] + sig(pre[j]) * Math.tanh(pre[2 * hidden + j]);
          next[j] = sig(pre[3 * hidden + j]) * Math.tanh(c[j]);
        }
        h = next;
      }
      const z = Array.from({ length: classes }, (_, k) => bOut[k] + h.reduce((s, v, j) => s + v * wOut[k * hidden + j], 0));
      total += crossEntropyOf(z, labels[b]);
    }
    references.set(key, total / batch);
  }
  return references.get(key);
}

/** Throws unless `loss` (a library's first-step loss) matches the float64 reference. */
export function checkLstmFirstLoss(what, loss, params) {
  checkFirstStepLoss(what, loss, referenceLoss(params), 'LSTM');
}

/**
 * One training step of nn.LSTM + nn.Linear with kiln.optim.Adam on Kiln's active backend (so the
 * native and WASM peers share it), written as a user would: tidy, zeroGrad, forward, loss,
 * backward, step, the loss read back. Checked on the first step; returns seconds per step.
 */
export function kilnLstmTrain(k, params) {
  const { batch, steps, inputs, hidden, classes, lr } = params;
  const d = lstmSetup(params);
  const lstm = new k.nn.LSTM(inputs, hidden, { returnSequences: false });
  const head = new k.nn.Linear(hidden, classes);
  const state = {
    weight_ih_l0: k.tensor(d.wIh, [4 * hidden, inputs]),
    weight_hh_l0: k.tensor(d.wHh, [4 * hidden, hidden]),
    bias_ih_l0: k.tensor(d.bias, [4 * hidden]),
    bias_hh_l0: k.zeros([4 * hidden]),
  };
  lstm.loadStateDict(state);
  const headState = { weight: k.tensor(d.wOut, [classes, hidden]), bias: k.tensor(d.bOut, [classes]) };
  head.loadStateDict(headState);
  k.dispose([state, headState]);
  const x = k.tensor(d.x, [batch, steps, inputs]);
  const y = k.tensor(d.labels, [batch], 'int32');
  const opt = new k.optim.Adam([...lstm.parameters(), ...head.parameters()], { lr });
  const step = kilnStep(k, opt, () => head.forward(lstm.forward(x)[0]), y);
  try {
    checkLstmFirstLoss(`kiln (${k.getBackend()}) lstm check`, step(), params);
    return timeStepRuns(step);
  } finally {
    opt.dispose();
    lstm.dispose();
    head.dispose();
    k.dispose([x, y]);
  }
}

/**
 * The same step in tfjs-layers (`tfl`; `tf` is tfjs-core): a tf.layers.lstm and a dense layer
 * applied eagerly inside optimizer.minimize (variableGrads + applyGradients), the loss read back.
 * The modules come in as arguments so that Kiln's peers, which import this file too, never load tfjs.
 */
export function tfjsLstmTrain(tf, tfl, params) {
  const { batch, steps, inputs, hidden, classes, lr } = params;
  const d = lstmSetup(params);
  // Initializers 'zeros': the weights are set below, and tfjs's orthogonal default needs the chained
  // ops that tfjs-core alone does not register.
  const init = { kernelInitializer: 'zeros', recurrentInitializer: 'zeros', biasInitializer: 'zeros' };
  const lstm = tfl.layers.lstm({ units: hidden, recurrentActivation: 'sigmoid', inputShape: [steps, inputs], ...init });
  const dense = tfl.layers.dense({ units: classes });
  const model = tfl.sequential({ layers: [lstm, dense] });
  tf.tidy(() => {
    lstm.setWeights([tf.tensor2d(d.kernel, [inputs, 4 * hidden]), tf.tensor2d(d.recurrentKernel, [hidden, 4 * hidden]), tf.tensor1d(d.bias)]);
    dense.setWeights([tf.tensor2d(d.denseKernel, [hidden, classes]), tf.tensor1d(d.bOut)]);
  });
  const x = tf.tensor3d(d.x, [batch, steps, inputs]);
  const y = tf.tensor2d(d.oneHot, [batch, classes]);
  const vars = model.trainableWeights.map((w) => w.read());
  const opt = tf.train.adam(lr);
  const step = () => tf.tidy(() => opt.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x)), true, vars).dataSync()[0]);
  try {
    checkLstmFirstLoss(`tfjs ${tf.getBackend()} lstm check`, step(), params);
    return timeStepRuns(step);
  } finally {
    opt.dispose();
    model.dispose();
    tf.dispose([x, y]);
  }
}
