// brain.js (npm `brain.js`): NeuralNetwork, plain JavaScript, one sample at a time.
//
// What "one training step on a batch of 128" maps to: brain.js's NeuralNetwork has no mini-batches.
// `net.train(data, { iterations: 1 })` runs one pass over `data`, and for each sample does a forward
// pass, a backward pass and a weight update (online learning), then returns the mean error of the
// pass. With the 128-sample batch as `data`, that is the closest equivalent of a training step: the
// same 128 samples go forward and backward, but the optimizer runs 128 times (once per sample)
// instead of once. Adam is brain.js's `praxis: 'adam'` with learningRate 1e-3. The network is
// hiddenLayers [512] with activation 'relu'; brain.js applies its activation to every layer,
// output included, and its loss is the mean squared error against the one-hot target (it has no
// softmax / cross-entropy), so the model differs in its head. Weights start from the same values as
// the other libraries' (copied into brain.js's per-neuron arrays).
import { createRequire } from 'node:module';
import { timeStepRuns } from '../timing.mjs';
import { mlpSetup } from './mlp.mjs';

const require = createRequire(import.meta.url);
let brain;

export default {
  id: 'brain.js',
  column: 'brain.js',
  init() {
    brain = require('brain.js');
    // A small check: a 2-3-1 network trains on XOR-like data and predicts one finite number.
    const net = new brain.NeuralNetwork({ hiddenLayers: [3] });
    net.train([{ input: [0, 1], output: [1] }, { input: [1, 1], output: [0] }], { iterations: 10 });
    const out = net.run([0, 1]);
    if (out.length !== 1 || !Number.isFinite(out[0])) throw new Error(`brain.js check: run gave ${Array.from(out)}`);
    const version = require('brain.js/package.json').version;
    return `brain.js ${version} (NeuralNetwork, plain JS; trains one sample at a time)`;
  },
  notes: {
    mlpTrain: 'brain.js: one train() pass over the 128 samples, updated per sample (128 Adam updates), MSE on a relu output (no softmax); see peers/brain.mjs',
  },
  workloads: {
    mlpTrain(params) {
      const { batch, inputs, hidden, classes, lr } = params;
      const d = mlpSetup(params);
      const data = [];
      for (let r = 0; r < batch; r++) {
        data.push({ input: d.x.subarray(r * inputs, (r + 1) * inputs), output: d.oneHot.subarray(r * classes, (r + 1) * classes) });
      }
      const options = { iterations: 1, errorThresh: 1e-9, praxis: 'adam', learningRate: lr, log: false };
      const net = new brain.NeuralNetwork({ hiddenLayers: [hidden], activation: 'relu', ...options });
      net.verifyIsInitialized(data); // allocates the layers and the Adam state
      // brain.js keeps weights[layer][neuron][input]: column `neuron` of our [inputs, outputs] matrix.
      const copy = (layer, w, b, fanIn, fanOut) => {
        for (let j = 0; j < fanOut; j++) {
          const row = net.weights[layer][j];
          for (let i = 0; i < fanIn; i++) row[i] = w[i * fanOut + j];
          net.biases[layer][j] = b[j];
        }
      };
      copy(1, d.w1, d.b1, inputs, hidden);
      copy(2, d.w2, d.b2, hidden, classes);
      const step = () => {
        const { error, iterations } = net.train(data, options);
        if (iterations !== 1 || !Number.isFinite(error)) throw new Error(`brain.js train gave error ${error} after ${iterations} iterations`);
        return error;
      };
      return timeStepRuns(step);
    },
  },
  close() {},
};
