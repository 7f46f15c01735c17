// convnetjs (npm `convnetjs` 0.3.0): plain JavaScript, Float64Array weights, one sample at a time.
//
// The network: input 784 -> fc 512 relu -> fc 10 softmax (softmax cross-entropy loss), weights
// copied from the shared initial model. The trainer accumulates the gradients of `batch_size`
// samples and updates once per batch (dividing by the batch size), so 128 calls of trainer.train on
// the batch's samples are exactly one training step on a batch of 128, computed one sample at a time.
// The loss read back is the mean of the 128 per-sample losses.
//
// Optimizer: convnetjs 0.3.0 (the version on npm) has no Adam: its Trainer knows 'sgd', 'adagrad',
// 'windowgrad' and 'adadelta', and any other method name (including 'adam') silently runs SGD with
// momentum. We use 'adadelta', the closest in cost to Adam (two running averages per parameter, a
// square root and a division per update). The update runs once per 128 samples, so it is a small
// part of the step either way.
import { createRequire } from 'node:module';
import { timeStepRuns } from '../timing.mjs';
import { checkFirstLoss, mlpSetup } from './mlp.mjs';
import { checkCnnFirstLoss, cnnSetup, hwcIndex } from './cnn.mjs';

const require = createRequire(import.meta.url);
let convnetjs;

export default {
  id: 'convnetjs',
  column: 'convnetjs',
  init() {
    convnetjs = require('convnetjs');
    // A small check: a softmax over 3 classes from 2 inputs gives probabilities that sum to 1.
    const net = new convnetjs.Net();
    net.makeLayers([{ type: 'input', out_sx: 1, out_sy: 1, out_depth: 2 }, { type: 'fc', num_neurons: 4, activation: 'relu' }, { type: 'softmax', num_classes: 3 }]);
    const p = net.forward(new convnetjs.Vol([0.5, -1])).w;
    if (p.length !== 3 || Math.abs(p[0] + p[1] + p[2] - 1) > 1e-9) throw new Error(`convnetjs check: softmax gave ${Array.from(p)}`);
    const version = require('convnetjs/package.json').version;
    return `convnetjs ${version} (plain JS, Float64; trains one sample at a time, batch_size 128)`;
  },
  notes: {
    cnnTrain: "convnetjs: 64 per-sample forward/backward passes, one update per batch; 'adadelta' (no Adam); see peers/convnetjs.mjs",
    mlpTrain: "convnetjs: 128 per-sample forward/backward passes, one update per batch; 'adadelta', as convnetjs 0.3.0 has no Adam; see peers/convnetjs.mjs",
  },
  workloads: {
    mlpTrain(params) {
      const { batch, inputs, hidden, classes } = params;
      const d = mlpSetup(params);
      const net = new convnetjs.Net();
      net.makeLayers([
        { type: 'input', out_sx: 1, out_sy: 1, out_depth: inputs },
        { type: 'fc', num_neurons: hidden, activation: 'relu' },
        { type: 'softmax', num_classes: classes },
      ]);
      // makeLayers expands this to input, fc, relu, fc, softmax. Each fc keeps one filter (a Vol)
      // per output neuron: column j of our [inputs, outputs] matrix. (Its default relu bias 0.1 is
      // overwritten with our zeros.)
      const fcs = net.layers.filter((l) => l.layer_type === 'fc');
      const copy = (layer, w, b, fanIn, fanOut) => {
        for (let j = 0; j < fanOut; j++) {
          const f = layer.filters[j].w;
          for (let i = 0; i < fanIn; i++) f[i] = w[i * fanOut + j];
          layer.biases.w[j] = b[j];
        }
      };
      copy(fcs[0], d.w1, d.b1, inputs, hidden);
      copy(fcs[1], d.w2, d.b2, hidden, classes);
      const xs = [];
      for (let r = 0; r < batch; r++) {
        const v = new convnetjs.Vol(1, 1, inputs, 0);
        v.w.set(d.x.subarray(r * inputs, (r + 1) * inputs));
        xs.push(v);
      }
      const trainer = new convnetjs.Trainer(net, { method: 'adadelta', batch_size: batch, l2_decay: 0 });
      const step = () => {
        let loss = 0;
        for (let r = 0; r < batch; r++) loss += trainer.train(xs[r], d.labels[r]).loss;
        return loss / batch;
      };
      checkFirstLoss('convnetjs mlp check', step(), params);
      return timeStepRuns(step);
    },
    /**
     * The CNN step of peers/cnn.mjs: conv 3x3x32 relu, pool 2, conv 3x3x64 relu, pool 2, fc 128
     * relu, fc 10 softmax, the same weights copied into convnetjs's depth-last volumes, batch_size 64.
     */
    cnnTrain(params) {
      const { batch, size, classes } = params;
      const d = cnnSetup(params);
      const net = new convnetjs.Net();
      net.makeLayers([
        { type: 'input', out_sx: size, out_sy: size, out_depth: 1 },
        { type: 'conv', sx: 3, filters: 32, stride: 1, pad: 0, activation: 'relu' },
        { type: 'pool', sx: 2, stride: 2 },
        { type: 'conv', sx: 3, filters: 64, stride: 1, pad: 0, activation: 'relu' },
        { type: 'pool', sx: 2, stride: 2 },
        { type: 'fc', num_neurons: 128, activation: 'relu' },
        { type: 'softmax', num_classes: classes },
      ]);
      // A conv filter is a Vol (3, 3, inChannels) indexed ((3·y)+x)·depth + c; our weight is
      // [out, in, 3, 3]. The first fc layer sees the 5x5x64 map in (y, x, c) order.
      const convs = net.layers.filter((l) => l.layer_type === 'conv');
      const copyConv = (layer, w, b, inC) => {
        layer.filters.forEach((f, o) => {
          for (let c = 0; c < inC; c++) for (let k = 0; k < 9; k++) f.w[k * inC + c] = w[(o * inC + c) * 9 + k];
          layer.biases.w[o] = b[o];
        });
      };
      copyConv(convs[0], d.c1w, d.c1b, 1);
      copyConv(convs[1], d.c2w, d.c2b, 32);
      const fcs = net.layers.filter((l) => l.layer_type === 'fc');
      const flat = 64 * 25;
      fcs[0].filters.forEach((f, o) => {
        for (let c = 0; c < 64; c++) for (let i = 0; i < 25; i++) f.w[hwcIndex(c, Math.floor(i / 5), i % 5)] = d.f1w[o * flat + c * 25 + i];
        fcs[0].biases.w[o] = d.f1b[o];
      });
      fcs[1].filters.forEach((f, o) => {
        for (let i = 0; i < 128; i++) f.w[i] = d.f2w[o * 128 + i];
        fcs[1].biases.w[o] = d.f2b[o];
      });
      const xs = [];
      for (let r = 0; r < batch; r++) {
        const v = new convnetjs.Vol(size, size, 1, 0);
        v.w.set(d.x.subarray(r * size * size, (r + 1) * size * size));
        xs.push(v);
      }
      const trainer = new convnetjs.Trainer(net, { method: 'adadelta', batch_size: batch, l2_decay: 0 });
      const step = () => {
        let loss = 0;
        for (let r = 0; r < batch; r++) loss += trainer.train(xs[r], d.labels[r]).loss;
        return loss / batch;
      };
      checkCnnFirstLoss('convnetjs cnn check', step(), params);
      return timeStepRuns(step);
    },
  },
  close() {},
};
