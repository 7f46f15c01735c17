// The browser benchmark page (examples/web/bench.html; `npm run bench:web` drives it in Chromium):
// matmul 1024 and the MLP training step of bench/ on Kiln's WASM backend, with 1 thread and with
// all the page's threads. Times are the best of several runs after a warm-up, as in bench/.
import * as kiln from '../../dist-web/kiln.js';

const out = document.getElementById('out');
const log = (line) => (out.textContent += `${line}\n`);

/** Best seconds per call of `f` over `repeats` runs of about `target` seconds each. */
function best(f, { target = 0.5, repeats = 3 } = {}) {
  f();
  let calls = 1;
  for (let t = 0; t < target / 4; calls *= 2) {
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) f();
    t = (performance.now() - t0) / 1000;
    if (t >= target / 4) break;
  }
  let seconds = Infinity;
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) f();
    seconds = Math.min(seconds, (performance.now() - t0) / 1000 / calls);
  }
  return seconds;
}

function matmulGflops(n) {
  const a = kiln.randn([n, n], { seed: 1 });
  const b = kiln.randn([n, n], { seed: 2 });
  const s = best(() => kiln.matmul(a, b).dispose());
  kiln.dispose([a, b]);
  return (2 * n ** 3) / s / 1e9;
}

/** Samples per second of the MLP step (bench/peers/kiln.mjs's, on random data). */
function mlpSamplesPerSecond({ batch = 128, inputs = 784, hidden = 512, classes = 10 } = {}) {
  const w1 = kiln.randn([inputs, hidden], { seed: 3, std: Math.sqrt(2 / inputs) }).setRequiresGrad();
  const b1 = kiln.zeros([hidden]).setRequiresGrad();
  const w2 = kiln.randn([hidden, classes], { seed: 4, std: Math.sqrt(1 / hidden) }).setRequiresGrad();
  const b2 = kiln.zeros([classes]).setRequiresGrad();
  const x = kiln.randn([batch, inputs], { seed: 5 });
  const y = kiln.tensor(Int32Array.from({ length: batch }, (_, i) => (i * 7) % classes), [batch], 'int32');
  const opt = new kiln.optim.Adam([w1, b1, w2, b2], { lr: 1e-3 });
  const step = () =>
    kiln.tidy(() => {
      opt.zeroGrad();
      const loss = kiln.crossEntropy(x.matmul(w1).add(b1).relu().matmul(w2).add(b2), y);
      loss.backward();
      opt.step();
      return loss.dataSync()[0];
    });
  const s = best(step);
  opt.dispose();
  kiln.dispose([w1, b1, w2, b2, x, y]);
  return batch / s;
}

/** Runs everything; returns { variant, isolated, threads, rows: [{ threads, matmul, mlp }] }. */
async function run() {
  await kiln.init();
  const all = kiln.numThreads();
  const result = { variant: kiln.wasmVariant(), simd: kiln.simdLevel(), isolated: globalThis.crossOriginIsolated === true, threads: all, rows: [] };
  log(`Kiln ${result.variant} build (${result.simd}), cross-origin isolated: ${result.isolated}, threads available: ${all}`);
  for (const t of all > 1 ? [1, all] : [1]) {
    kiln.setNumThreads(t);
    const row = { threads: t, matmul: matmulGflops(1024), mlp: mlpSamplesPerSecond() };
    result.rows.push(row);
    log(`${t} thread${t > 1 ? 's' : ' '}: matmul 1024 ${row.matmul.toFixed(1)} GFLOP/s, MLP step ${Math.round(row.mlp)} samples/s`);
  }
  kiln.setNumThreads(all);
  return result;
}

window.kilnBench = { run };
document.getElementById('run').addEventListener('click', () => run());
