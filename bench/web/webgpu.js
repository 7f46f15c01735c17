// The WebGPU rows of `npm run bench:web` (scripts/bench-web.mjs serves and drives this page): the
// workloads of bench/ (matmul 1024; the MLP training step 784-512-10, batch 128, Adam) on Kiln's
// GPU backend, TensorFlow.js's WebGPU backend and onnxruntime-web's WebGPU execution provider,
// with the same inputs (bench/peers/mlp.mjs, common.mjs). Every peer's outputs are checked against
// a float64 reference before it is timed. onnxruntime-web runs inference only: no MLP step.
//
// A GPU call returns before the device has run it, so every timed call ends with a read of its
// result (`await data()`), as a page's code must: the figures include that readback.
import * as kiln from '../../dist-web/kiln.js';
import * as ort from '../node_modules/onnxruntime-web/dist/ort.webgpu.min.mjs';
import { MLP } from '../workloads.mjs';
import { assertClose, randomNormal, referenceMatmul } from '../peers/common.mjs';
import { checkFirstLoss, mlpSetup } from '../peers/mlp.mjs';
import { binaryOpModel } from '../peers/onnx-model.mjs';

const out = document.getElementById('out');
const log = (line) => (out.textContent += `${line}\n`);

/** Best seconds of `f` (async: it ends when its result is read) over about `budget` seconds after a warm-up. */
async function bestAsync(f, budget = 1.5) {
  await f();
  let seconds = Infinity;
  const end = performance.now() + budget * 1000;
  do {
    const t0 = performance.now();
    await f();
    seconds = Math.min(seconds, (performance.now() - t0) / 1000);
  } while (performance.now() < end);
  return seconds;
}

const N = 1024;
/** Rows of the 1024 product checked against the float64 reference (all of it would take seconds of JS). */
const CHECK_ROWS = 8;

/** Throws unless the first CHECK_ROWS rows of a·b (n x n) equal the float64 reference. */
function checkMatmul(what, got, a, b, n) {
  const want = referenceMatmul(a.subarray(0, CHECK_ROWS * n), b, CHECK_ROWS, n, n);
  // Sums of n products of N(0, 1) values: float32 accumulation error grows with sqrt(n).
  assertClose(`${what} matmul ${n} (first ${CHECK_ROWS} rows)`, got.subarray(0, CHECK_ROWS * n), want, 1e-3);
}

/**
 * Each peer: `matmul(a, b)` returns an async call computing a·b (n x n) and reading it back;
 * `mlp()` returns an async training step resolving to its loss (or is missing: inference only).
 */
const peers = {
  kiln: {
    label: 'Kiln (WebGPU)',
    async init() {
      await kiln.init();
      if ((await kiln.setBackend('gpu')) !== 'gpu') throw new Error('Kiln: setBackend(gpu) fell back to WASM (no WebGPU adapter)');
      const info = kiln.gpuInfo();
      return { adapter: [info.vendor, info.architecture].filter(Boolean).join(' ') || info.adapter, software: info.software };
    },
    matmul(a, b, n) {
      const [ta, tb] = [kiln.tensor(a, [n, n]), kiln.tensor(b, [n, n])];
      return {
        run: async () => {
          const c = kiln.matmul(ta, tb);
          const data = await c.data();
          c.dispose();
          return data;
        },
        dispose: () => kiln.dispose([ta, tb]),
      };
    },
    mlp() {
      const d = mlpSetup(MLP);
      const { batch, inputs, hidden, classes, lr } = MLP;
      const param = (v, shape) => kiln.tensor(v, shape).setRequiresGrad();
      const [w1, b1, w2, b2] = [param(d.w1, [inputs, hidden]), param(d.b1, [hidden]), param(d.w2, [hidden, classes]), param(d.b2, [classes])];
      const [x, y] = [kiln.tensor(d.x, [batch, inputs]), kiln.tensor(d.labels, [batch], 'int32')];
      const opt = new kiln.optim.Adam([w1, b1, w2, b2], { lr });
      return {
        run: async () => {
          const loss = kiln.tidy(() => {
            opt.zeroGrad();
            const l = kiln.crossEntropy(x.matmul(w1).add(b1).relu().matmul(w2).add(b2), y);
            l.backward();
            opt.step();
            return l;
          });
          const value = (await loss.data())[0];
          loss.dispose();
          return value;
        },
        dispose: () => {
          opt.dispose();
          kiln.dispose([w1, b1, w2, b2, x, y]);
        },
      };
    },
    async close() {
      await kiln.setBackend('wasm');
    },
  },
  tfjs: {
    label: 'TensorFlow.js (tfjs-backend-webgpu)',
    tf: null,
    async init() {
      // The bundle scripts/bench-web.mjs builds: tfjs-core with its gradients and the WebGPU backend.
      const { tf } = await import('/bench-build/tfjs-webgpu.js');
      this.tf = tf;
      if (!(await tf.setBackend('webgpu'))) throw new Error("tfjs: setBackend('webgpu') failed");
      await tf.ready();
      return { version: tf.version_core };
    },
    matmul(a, b, n) {
      const tf = this.tf;
      const [ta, tb] = [tf.tensor2d(a, [n, n]), tf.tensor2d(b, [n, n])];
      return {
        run: async () => {
          const c = tf.matMul(ta, tb);
          const data = await c.data();
          c.dispose();
          return data;
        },
        dispose: () => tf.dispose([ta, tb]),
      };
    },
    mlp() {
      const tf = this.tf;
      const d = mlpSetup(MLP);
      const { batch, inputs, hidden, classes, lr } = MLP;
      const variable = (v, shape) => tf.tidy(() => tf.variable(tf.tensor(v, shape)));
      const [w1, b1, w2, b2] = [variable(d.w1, [inputs, hidden]), variable(d.b1, [hidden]), variable(d.w2, [hidden, classes]), variable(d.b2, [classes])];
      const [x, y] = [tf.tensor2d(d.x, [batch, inputs]), tf.tensor2d(d.oneHot, [batch, classes])];
      // Kiln's Adam defaults (betas 0.9, 0.999; eps 1e-8).
      const opt = tf.train.adam(lr, 0.9, 0.999, 1e-8);
      const forward = () => tf.losses.softmaxCrossEntropy(y, tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x, w1), b1)), w2), b2));
      return {
        run: async () => {
          const loss = opt.minimize(forward, true, [w1, b1, w2, b2]);
          const value = (await loss.data())[0];
          loss.dispose();
          return value;
        },
        dispose: () => {
          opt.dispose();
          tf.dispose([w1, b1, w2, b2, x, y]);
        },
      };
    },
    async close() {},
  },
  ort: {
    label: "onnxruntime-web (WebGPU execution provider)",
    async init() {
      ort.env.wasm.wasmPaths = new URL('../node_modules/onnxruntime-web/dist/', import.meta.url).href;
      ort.env.wasm.numThreads = 1;
      return { version: ort.env.versions?.web ?? '?' };
    },
    async matmulAsync(a, b, n) {
      const session = await ort.InferenceSession.create(binaryOpModel('MatMul', [n, n], [n, n], [n, n]), { executionProviders: ['webgpu'] });
      const feeds = { A: new ort.Tensor('float32', a, [n, n]), B: new ort.Tensor('float32', b, [n, n]) };
      return {
        // The output comes back to the CPU (ort's default output location): the read is part of the call.
        run: async () => (await session.run(feeds)).Y.data,
        dispose: () => session.release(),
      };
    },
    async close() {},
  },
};

/**
 * Runs each peer's workloads `rounds` times and keeps the best; checks outputs first.
 * Returns { adapter, software, peers: [{ id, label, version, matmul, mlp }] } (GFLOP/s,
 * samples/s; mlp null where the peer has no training), or null without a WebGPU adapter.
 */
async function run({ rounds = 1, only } = {}) {
  if (!navigator.gpu || !(await navigator.gpu.requestAdapter())) return null;
  const a = randomNormal(N * N, 1);
  const b = randomNormal(N * N, 2);
  const result = { peers: [] };
  for (const [id, peer] of Object.entries(peers)) {
    if (only && !only.includes(id)) continue;
    const info = await peer.init();
    if (info.adapter) Object.assign(result, { adapter: info.adapter, software: info.software });
    const row = { id, label: peer.label, version: info.version ?? null, matmul: 0, mlp: null };
    const mm = peer.matmul ? peer.matmul(a, b, N) : await peer.matmulAsync(a, b, N);
    checkMatmul(peer.label, await mm.run(), a, b, N);
    for (let r = 0; r < rounds; r++) row.matmul = Math.max(row.matmul, (2 * N ** 3) / (await bestAsync(mm.run)) / 1e9);
    await mm.dispose();
    if (peer.mlp) {
      // A fresh model per round (training moves the weights): the first step's loss is checked each time.
      row.mlp = 0;
      for (let r = 0; r < rounds; r++) {
        const step = peer.mlp();
        checkFirstLoss(`${peer.label} MLP step`, await step.run(), MLP);
        row.mlp = Math.max(row.mlp, MLP.batch / (await bestAsync(step.run)));
        step.dispose();
      }
    }
    await peer.close();
    log(`${peer.label}: matmul ${N} ${row.matmul.toFixed(1)} GFLOP/s, MLP step ${row.mlp === null ? 'n/a (inference only)' : `${Math.round(row.mlp)} samples/s`}`);
    result.peers.push(row);
  }
  return result;
}

window.webgpuBench = { run };
