// Kiln, native backend (Rust kernels through the N-API addon), from the repository's dist/.
import { now, STEP_RUNS, TARGET, timePhasesSync, timeStepRuns, timeSync } from '../timing.mjs';
import { assertClose, conv2dCheckCase, pool2dCheckCase, randomNormal, referenceMatmul } from './common.mjs';
import { checkFirstLoss, mlpSetup } from './mlp.mjs';
import { kilnLstmTrain } from './lstm.mjs';
import { attentionSetup, CHECK_ROWS, referenceAttention } from './attention.mjs';
import { kilnCnnTrain } from './cnn.mjs';
import { runFlopsProbe, runReadProbe } from '../flops-probe.mjs';
import { kilnResnet18Train, kilnTransformerTrain } from './large.mjs';

let kiln;

/**
 * The MLP of the mlp-train workloads on raw tensors: parameters with requiresGrad, the batch, an
 * Adam optimizer. `forward()` returns the loss tensor (call it inside a tidy).
 */
function mlp(params) {
  const { batch, inputs, hidden, classes, lr } = params;
  const d = mlpSetup(params);
  const w1 = kiln.tensor(d.w1, [inputs, hidden]).setRequiresGrad();
  const b1 = kiln.tensor(d.b1, [hidden]).setRequiresGrad();
  const w2 = kiln.tensor(d.w2, [hidden, classes]).setRequiresGrad();
  const b2 = kiln.tensor(d.b2, [classes]).setRequiresGrad();
  const x = kiln.tensor(d.x, [batch, inputs]);
  const y = kiln.tensor(d.labels, [batch], 'int32');
  const opt = new kiln.optim.Adam([w1, b1, w2, b2], { lr });
  return {
    opt,
    forward: () => kiln.crossEntropy(x.matmul(w1).add(b1).relu().matmul(w2).add(b2), y),
    dispose() {
      opt.dispose();
      kiln.dispose([w1, b1, w2, b2, x, y]);
    },
  };
}

/**
 * The conv2d workload on Kiln's active backend (kiln-wasm.mjs reuses it): checked against the
 * reference on a small case, then timed on random inputs. Returns seconds per call.
 */
export function kilnConv2d(k, { batch, channels, size, filters, kernel }) {
  const check = conv2dCheckCase();
  const [n, c, h, wd, o, kk] = check.dims;
  const cx = k.tensor(check.x, [n, c, h, wd]);
  const cw = k.tensor(check.w, [o, c, kk, kk]);
  const cy = k.conv2d(cx, cw, { padding: 'same' });
  assertClose(`kiln (${k.getBackend()}) conv2d check`, cy.dataSync(), check.want);
  k.dispose([cx, cw, cy]);
  const x = k.tensor(randomNormal(batch * channels * size * size, 7), [batch, channels, size, size]);
  const w = k.tensor(randomNormal(filters * channels * kernel * kernel, 8), [filters, channels, kernel, kernel]);
  try {
    return timeSync(() => k.conv2d(x, w, { padding: 'same' }).dispose());
  } finally {
    k.dispose([x, w]);
  }
}

export default {
  id: 'kiln',
  column: 'kiln',
  async init() {
    kiln = await import('../../dist/index.js');
    // Sanity check on a small case before timing anything.
    const [m, k, n] = [5, 7, 3];
    const a = randomNormal(m * k, 3);
    const b = randomNormal(k * n, 4);
    const ta = kiln.tensor(a, [m, k]);
    const tb = kiln.tensor(b, [k, n]);
    const tc = kiln.matmul(ta, tb);
    assertClose('kiln matmul check', tc.dataSync(), referenceMatmul(a, b, m, k, n));
    const ts = kiln.add(ta, ta);
    assertClose('kiln add check', ts.dataSync(), a.map((x) => 2 * x));
    kiln.dispose([ta, tb, tc, ts]);
    this.info = { simdLevel: kiln.simdLevel(), numThreads: kiln.numThreads() };
    return `Kiln native (N-API), SIMD ${this.info.simdLevel}, ${this.info.numThreads} threads`;
  },
  /** Shown under the table: the fma-peak row is the machine's, listed in Kiln's column. */
  notes: {
    fmaPeak: 'fma-peak: bench/flops-probe, a separate Rust binary (not Kiln): independent f32 FMAs in registers on all threads; in the kiln column only',
    memoryRead: 'memory-*: bench/flops-probe --read (not Kiln): every thread sums a buffer of its own again and again; the machine\'s own spread, in the kiln column only',
  },
  workloads: {
    /** The machine's FMA ceiling in GFLOP/s (a value, not seconds: the workload's value() passes it through). */
    fmaPeak() {
      return runFlopsProbe().best.gflops;
    },
    /** The machine's read speed at one level of memory, as runs of seconds per GB (a training step's form). */
    memoryRead({ kib }) {
      return { runs: runReadProbe({ kib, seconds: TARGET, runs: STEP_RUNS }).map((gbps) => 1 / gbps) };
    },
    matmul({ n }) {
      const a = kiln.randn([n, n]);
      const b = kiln.randn([n, n]);
      try {
        return timeSync(() => kiln.matmul(a, b).dispose());
      } finally {
        a.dispose();
        b.dispose();
      }
    },
    add({ size }) {
      const a = kiln.tensor(randomNormal(size, 5));
      const b = kiln.tensor(randomNormal(size, 6));
      try {
        return timeSync(() => kiln.add(a, b).dispose());
      } finally {
        a.dispose();
        b.dispose();
      }
    },
    // convolution (CNN family)
    conv2d(params) {
      return kilnConv2d(kiln, params);
    },
    /** maxPool2d / avgPool2d forward (no padding), checked on a small case first. */
    pool2d({ op, batch, channels, size, kernel, stride }) {
      const pool = op === 'max' ? kiln.maxPool2d : kiln.avgPool2d;
      const check = pool2dCheckCase(op, kernel, stride);
      const cx = kiln.tensor(check.x, check.dims);
      const cy = pool(cx, kernel, { stride });
      assertClose(`kiln (${kiln.getBackend()}) ${op}Pool2d check`, cy.dataSync(), check.want);
      kiln.dispose([cx, cy]);
      const x = kiln.tensor(randomNormal(batch * channels * size * size, 7), [batch, channels, size, size]);
      try {
        return timeSync(() => pool(x, kernel, { stride }).dispose());
      } finally {
        x.dispose();
      }
    },
    /** One training step as a training loop writes it, the loss read back for a progress bar. */
    mlpTrain(params) {
      const m = mlp(params);
      const step = () =>
        kiln.tidy(() => {
          m.opt.zeroGrad();
          const loss = m.forward();
          loss.backward();
          m.opt.step();
          return loss.dataSync()[0];
        });
      try {
        checkFirstLoss('kiln mlp check', step(), params);
        return timeStepRuns(step);
      } finally {
        m.dispose();
      }
    },
    /**
     * The same step with a clock read between its phases. Kiln's ops run synchronously (each call
     * returns when its kernel is done), so the phase boundaries are real. forward+loss includes
     * reading the loss back; optimizer is zeroGrad + step.
     */
    mlpTrainBreakdown(params) {
      const m = mlp(params);
      const step = () =>
        kiln.tidy(() => {
          const t0 = now();
          m.opt.zeroGrad();
          const t1 = now();
          const loss = m.forward();
          loss.dataSync();
          const t2 = now();
          loss.backward();
          const t3 = now();
          m.opt.step();
          const t4 = now();
          return [t2 - t1, t3 - t2, t1 - t0 + (t4 - t3)];
        });
      try {
        const [forward, backward, optimizer] = timePhasesSync(step);
        return { forward, backward, optimizer };
      } finally {
        m.dispose();
      }
    },
    // recurrent layers (RNN family)
    lstmTrain(params) {
      return kilnLstmTrain(kiln, params);
    },
    /**
     * Multi-head self-attention forward (bench/peers/attention.mjs): projections as matmuls, heads
     * split and merged by views, and the fused attention kernel (kiln.attention).
     */
    selfAttention(params) {
      const { seq, dModel, heads } = params;
      const d = attentionSetup(params);
      const x = kiln.tensor(d.x, [1, seq, dModel]);
      const [wq, wk, wv, wo] = [d.wq, d.wk, d.wv, d.wo].map((w) => kiln.tensor(w, [dModel, dModel]));
      const split = (t) => t.reshape([1, seq, heads, dModel / heads]).transpose([0, 2, 1, 3]);
      const forward = () =>
        kiln.tidy(() => {
          const o = kiln.attention(split(x.matmul(wq)), split(x.matmul(wk)), split(x.matmul(wv)));
          return o.transpose([0, 2, 1, 3]).reshape([1, seq, dModel]).matmul(wo);
        });
      try {
        const out = forward();
        assertClose('kiln self-attention check', out.dataSync().slice(0, CHECK_ROWS * dModel), referenceAttention(params, CHECK_ROWS), 1e-3);
        out.dispose();
        return timeSync(() => forward().dispose());
      } finally {
        kiln.dispose([x, wq, wk, wv, wo]);
      }
    },
    // CNN training step
    cnnTrain(params) {
      return kilnCnnTrain(kiln, params);
    },
    // training at larger scale (bench/peers/large.mjs)
    resnet18Train(params) {
      return kilnResnet18Train(kiln, params);
    },
    transformerTrain(params) {
      return kilnTransformerTrain(kiln, params);
    },
  },
  /** Live tensors after the run: anything here is a leak in the benchmark or in Kiln. */
  close() {
    const live = kiln?.memory().numTensors ?? 0;
    if (live !== 0) console.warn(`  note: ${live} Kiln tensors still alive after the benchmarks`);
  },
};
