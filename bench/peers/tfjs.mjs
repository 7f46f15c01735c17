// TensorFlow.js (tfjs-core) on a given backend; tfjs-cpu.mjs and tfjs-wasm.mjs instantiate it.
// Both share one tfjs-core, so every workload selects its backend first.
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core alone registers no gradient functions in Node; tfjs-layers registers them all (as the
// @tensorflow/tfjs bundle a training app would import does). Needed by the mlp-train workloads.
import '@tensorflow/tfjs-layers';
import { createRequire } from 'node:module';
import { now, timePhasesSync, timeStepRuns, timeSync } from '../timing.mjs';
import { assertClose, conv2dCheckCase, pool2dCheckCase, randomNormal } from './common.mjs';
import { checkFirstLoss, mlpSetup } from './mlp.mjs';
import * as tfLayers from '@tensorflow/tfjs-layers';
import { tfjsLstmTrain } from './lstm.mjs';
import { attentionSetup, CHECK_ROWS, referenceAttention } from './attention.mjs';
import { tfjsCnnTrain } from './cnn.mjs';

// PROD: what a deployed app uses; also silences the "install tfjs-node" banner.
tf.env().set('PROD', true);

const require = createRequire(import.meta.url);
const versionOf = (pkg) => require(`${pkg}/package.json`).version;

/**
 * The MLP of the mlp-train workloads: tf.variable parameters, the batch (labels one-hot once, as
 * data preparation), tf.train.adam. `loss()` is the forward pass with the loss (functional ops:
 * tfjs-core registers no chained ops like x.matMul without the full bundle).
 */
function mlp(params) {
  const { batch, inputs, hidden, classes, lr } = params;
  const d = mlpSetup(params);
  // (tidy frees the initial-value tensors; the variables keep their data)
  const variable = (values, shape) => tf.tidy(() => tf.variable(tf.tensor(values, shape)));
  const w1 = variable(d.w1, [inputs, hidden]);
  const b1 = variable(d.b1, [hidden]);
  const w2 = variable(d.w2, [hidden, classes]);
  const b2 = variable(d.b2, [classes]);
  const x = tf.tensor2d(d.x, [batch, inputs]);
  const y = tf.tensor2d(d.oneHot, [batch, classes]);
  const vars = [w1, b1, w2, b2];
  const opt = tf.train.adam(lr);
  return {
    vars,
    opt,
    // softmaxCrossEntropy's default reduction is the mean over the batch, as Kiln's.
    loss: () => tf.losses.softmaxCrossEntropy(y, tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x, w1), b1)), w2), b2)),
    dispose() {
      opt.dispose();
      tf.dispose([...vars, x, y]);
    },
  };
}

export function tfjsPeer({ id, column, backend, pkg, describe }) {
  const use = async () => {
    if (tf.getBackend() !== backend && !(await tf.setBackend(backend))) throw new Error(`tf.setBackend('${backend}') failed`);
    await tf.ready();
  };
  return {
    id,
    column,
    async init() {
      await import(pkg); // registers the backend
      await use();
      const a = tf.tensor2d([1, 2, 3, 4], [2, 2]);
      const c = tf.matMul(a, a);
      const got = Array.from(c.dataSync());
      tf.dispose([a, c]);
      if (got.join() !== '7,10,15,22') throw new Error(`tfjs ${backend} matmul check gave ${got}`);
      return describe(versionOf(pkg));
    },
    workloads: {
      async matmul({ n }) {
        await use();
        const a = tf.tensor2d(randomNormal(n * n, 1), [n, n]);
        const b = tf.tensor2d(randomNormal(n * n, 2), [n, n]);
        try {
          return timeSync(() => tf.matMul(a, b).dispose());
        } finally {
          tf.dispose([a, b]);
        }
      },
      async add({ size }) {
        await use();
        const a = tf.tensor1d(randomNormal(size, 5));
        const b = tf.tensor1d(randomNormal(size, 6));
        try {
          return timeSync(() => tf.add(a, b).dispose());
        } finally {
          tf.dispose([a, b]);
        }
      },
      /** conv2d in tfjs's layout: NHWC input, [k, k, in, out] filter, 'same'; checked on a small case first. */
      async conv2d({ batch, channels, size, filters, kernel }) {
        await use();
        const check = conv2dCheckCase();
        const [n, c, h, wd, o, k] = check.dims;
        const got = tf.tidy(() => {
          const x = tf.transpose(tf.tensor4d(check.x, [n, c, h, wd]), [0, 2, 3, 1]);
          const w = tf.transpose(tf.tensor4d(check.w, [o, c, k, k]), [2, 3, 1, 0]);
          return tf.transpose(tf.conv2d(x, w, 1, 'same'), [0, 3, 1, 2]).dataSync();
        });
        assertClose(`tfjs ${backend} conv2d check`, got, check.want);
        const x = tf.tensor4d(randomNormal(batch * size * size * channels, 7), [batch, size, size, channels]);
        const w = tf.tensor4d(randomNormal(kernel * kernel * channels * filters, 8), [kernel, kernel, channels, filters]);
        try {
          return timeSync(() => tf.conv2d(x, w, 1, 'same').dispose());
        } finally {
          tf.dispose([x, w]);
        }
      },
      /** maxPool / avgPool in tfjs's layout (NHWC), 'valid'; checked on a small case first. */
      async pool2d({ op, batch, channels, size, kernel, stride }) {
        await use();
        const pool = op === 'max' ? tf.maxPool : tf.avgPool;
        const check = pool2dCheckCase(op, kernel, stride);
        const got = tf.tidy(() => {
          const x = tf.transpose(tf.tensor4d(check.x, check.dims), [0, 2, 3, 1]);
          return tf.transpose(pool(x, kernel, stride, 'valid'), [0, 3, 1, 2]).dataSync();
        });
        assertClose(`tfjs ${backend} ${op}Pool check`, got, check.want);
        const x = tf.tensor4d(randomNormal(batch * size * size * channels, 7), [batch, size, size, channels]);
        try {
          return timeSync(() => pool(x, kernel, stride, 'valid').dispose());
        } finally {
          x.dispose();
        }
      },
      /** One step: optimizer.minimize (tf.variableGrads + applyGradients) and the loss read back. */
      async mlpTrain(params) {
        await use();
        const m = mlp(params);
        const step = () => tf.tidy(() => m.opt.minimize(m.loss, true, m.vars).dataSync()[0]);
        try {
          checkFirstLoss(`tfjs ${backend} mlp check`, step(), params);
          return timeStepRuns(step);
        } finally {
          m.dispose();
        }
      },
      /**
       * tfjs has no separate backward call: tf.variableGrads runs the forward pass (recording the
       * tape) and the backward pass together. So: forward+loss = a forward-only pass timed on its
       * own (loss read back); backward = (variableGrads with the loss read back) - forward;
       * optimizer = applyGradients, timed inside the step. The cpu and wasm backends run their
       * kernels synchronously, so the clock readings inside a step are real phase boundaries.
       */
      async mlpTrainBreakdown(params) {
        await use();
        const m = mlp(params);
        try {
          const forward = timeSync(() => tf.tidy(() => m.loss().dataSync()[0]));
          const step = () =>
            tf.tidy(() => {
              const t0 = now();
              const { value, grads } = tf.variableGrads(m.loss, m.vars);
              value.dataSync();
              const t1 = now();
              m.opt.applyGradients(grads);
              const t2 = now();
              return [t1 - t0, t2 - t1];
            });
          const [forwardBackward, optimizer] = timePhasesSync(step);
          return { forward, backward: forwardBackward - forward, optimizer };
        } finally {
          m.dispose();
        }
      },
      // recurrent layers (RNN family)
      async lstmTrain(params) {
        await use();
        return tfjsLstmTrain(tf, tfLayers, params);
      },
      /**
       * Multi-head self-attention forward composed from tfjs ops (tfjs has no fused attention):
       * matMul projections, reshape/transpose into heads, matMul (transposeB) for the scores,
       * softmax, matMul with v, merge, output matMul.
       */
      async selfAttention(params) {
        await use();
        const { seq, dModel, heads } = params;
        const d = attentionSetup(params);
        const dh = dModel / heads;
        const x = tf.tensor2d(d.x, [seq, dModel]);
        const [wq, wk, wv, wo] = [d.wq, d.wk, d.wv, d.wo].map((w) => tf.tensor2d(w, [dModel, dModel]));
        const split = (t) => tf.transpose(tf.reshape(t, [1, seq, heads, dh]), [0, 2, 1, 3]);
        const forward = () =>
          tf.tidy(() => {
            const [q, k, v] = [wq, wk, wv].map((w) => split(tf.matMul(x, w)));
            const weights = tf.softmax(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(dh)));
            const merged = tf.reshape(tf.transpose(tf.matMul(weights, v), [0, 2, 1, 3]), [seq, dModel]);
            return tf.matMul(merged, wo);
          });
        try {
          const out = forward();
          assertClose(`tfjs ${backend} self-attention check`, out.dataSync().slice(0, CHECK_ROWS * dModel), referenceAttention(params, CHECK_ROWS), 1e-3);
          out.dispose();
          return timeSync(() => forward().dispose());
        } finally {
          tf.dispose([x, wq, wk, wv, wo]);
        }
      },
      // CNN training step
      async cnnTrain(params) {
        await use();
        return tfjsCnnTrain(tf, tfLayers, params);
      },
    },
    close() {},
  };
}
