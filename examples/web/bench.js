// The browser benchmark page (examples/web/bench.html; `npm run bench:web` drives it in Chromium):
// matmul 1024 and the MLP training step of bench/ on Kiln's WASM backend, with 1 thread and with
// all the page's threads. Times are the best of several runs after a warm-up, as in bench/.
import * as kiln from '../../dist-web/kiln.js';

const out = document.getElementById('out');
const log = (line) => (out.textContent += `${line}\n`);

/**
 * Best seconds per call of `f`: calls are timed in batches of about 20 ms (one call, for calls
 * longer than that), for about `budget` seconds after a warm-up, and the fastest batch counts.
 * Short batches and many of them: on a shared machine some batch runs undisturbed.
 */
function best(f, budget = 1.5) {
  f();
  let calls = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) f();
    if (performance.now() - t0 >= 20 || calls >= 1 << 16) break;
    calls *= 2;
  }
  let seconds = Infinity;
  const end = performance.now() + budget * 1000;
  while (performance.now() < end) {
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

/**
 * Runs everything `rounds` times, alternating the thread counts, and keeps each one's best: on a
 * shared machine the best round is the one least disturbed by other processes.
 * Returns { variant, simd, isolated, threads, rows: [{ threads, matmul, mlp }] }.
 */
async function run({ rounds = 1 } = {}) {
  await kiln.init();
  const all = kiln.numThreads();
  const result = { variant: kiln.wasmVariant(), simd: kiln.simdLevel(), isolated: globalThis.crossOriginIsolated === true, threads: all, rows: [] };
  log(`Kiln ${result.variant} build (${result.simd}), cross-origin isolated: ${result.isolated}, threads available: ${all}`);
  const counts = all > 1 ? [1, all] : [1];
  const rows = counts.map((t) => ({ threads: t, matmul: 0, mlp: 0 }));
  for (let r = 0; r < rounds; r++) {
    for (const row of rows) {
      kiln.setNumThreads(row.threads);
      row.matmul = Math.max(row.matmul, matmulGflops(1024));
      row.mlp = Math.max(row.mlp, mlpSamplesPerSecond());
    }
  }
  kiln.setNumThreads(all);
  for (const row of rows) log(`${row.threads} thread${row.threads > 1 ? 's' : ' '}: matmul 1024 ${row.matmul.toFixed(1)} GFLOP/s, MLP step ${Math.round(row.mlp)} samples/s`);
  result.rows = rows;
  return result;
}

window.kilnBench = { run };
document.getElementById('run').addEventListener('click', () => run({ rounds: 3 }));
