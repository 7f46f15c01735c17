// `npm run bench:quant`: quantized inference against float32 on the native backend, per layer:
// a Linear 784 -> 512 (the MNIST MLP's first layer) and a Conv2d 32 -> 64 3x3 'same' on 14x14
// (the MNIST CNN's second conv), at batch 1 and a large batch. Variants: float32 (nn.Linear /
// nn.Conv2d), int8 weights with float activations (activations: 'float32', the weight-only
// kernels), W8A8 (int8 x int8, activations: 'int8') on the best instruction path and
// forced to AVX2 and scalar (KILN_INT8_PATH), and int4.
//
// Variants are timed in alternating rounds (every variant once per round, ROUNDS rounds) so a load
// change on a shared machine hits all of them alike. Each round records the fastest single call
// of about SECONDS of calls (on a loaded machine, the call that ran undisturbed) and the mean; the
// table shows the best of the fastest calls, the median of the round means, and the speed-up of
// each variant over float32 from the fastest calls.
//
//   npm run bench:quant [-- --rounds N] [-- --batch 1] [-- --only conv] [-- --backend wasm] [-- --json out.json]
//
// `--batch N` keeps the cases of that batch size (1: the batch-1 rows alone), `--only WORD` the
// layers whose name contains WORD (Linear, Conv2d; any case). `--backend wasm` runs the same table on
// the WASM module Node loads (relaxed SIMD where the engine has it; `KILN_WASM_VARIANT=simd` for the
// plain SIMD128 one), one thread: there the W8A8 path is SIMD128 and has no forced variants.
import { writeFileSync } from 'node:fs';
import * as kiln from '../dist/index.js';

const { nn } = kiln;
const argv = process.argv.slice(2);
const arg = (name, fallback) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : fallback);
const ROUNDS = Number(arg('--rounds', 5));
const BATCH = arg('--batch', null);
const ONLY = arg('--only', null);
const BACKEND = arg('--backend', 'native');
if (BACKEND !== 'native' && BACKEND !== 'wasm') throw new Error(`bench:quant: --backend must be native or wasm, got ${BACKEND}`);
const SECONDS = 0.25; // per variant per round

/** { fastest, mean } ms per call of `fn` over about SECONDS of calls (after one warm-up call). */
function msPerCall(fn) {
  fn();
  let calls = 0;
  let fastest = Infinity;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < SECONDS * 1000 || calls < 3) {
    fn();
    calls++;
    const now = performance.now();
    fastest = Math.min(fastest, now - t);
    t = now;
  }
  return { fastest, mean: (t - t0) / calls };
}

/** Runs `call` with KILN_INT8_PATH set to `path` (undefined: the best the CPU has). */
function onPath(path, call) {
  return () => {
    if (path) process.env.KILN_INT8_PATH = path;
    try {
      call();
    } finally {
      delete process.env.KILN_INT8_PATH;
    }
  };
}

/** The variants of one float layer: name -> a forward call on `x` (output freed). */
function variants(layer, x) {
  const quantized = (options) => {
    const copy = layer instanceof nn.Linear ? new nn.Linear(layer.inFeatures, layer.outFeatures) : null;
    const source = copy ?? new nn.Conv2d(layer.inChannels, layer.outChannels, layer.weight.shape[2], { padding: 'same' });
    source.loadStateDict(layer.stateDict());
    return kiln.quantize(source, options);
  };
  const run = (m) => () => kiln.noGrad(() => m.forward(x)).dispose();
  const w8a8 = quantized({ bits: 8, activations: 'int8' });
  return {
    float32: run(layer),
    'int8 weights, f32 activations': run(quantized({ bits: 8, activations: 'float32' })),
    'W8A8 (best path)': run(w8a8),
    // KILN_INT8_PATH is read by the native addon only (a WASM module sees no environment).
    ...(BACKEND === 'native' ? { 'W8A8 avx2': onPath('avx2', run(w8a8)), 'W8A8 scalar': onPath('scalar', run(w8a8)) } : {}),
    'int4 (block 32)': run(quantized({ bits: 4 })),
  };
}

await kiln.setBackend(BACKEND);
const linear = new nn.Linear(784, 512, { seed: 1 });
const conv = new nn.Conv2d(32, 64, 3, { padding: 'same', seed: 2 });
const cases = [
  { layer: 'Linear 784->512', batch: 1, module: linear, x: [1, 784], seed: 3 },
  { layer: 'Linear 784->512', batch: 256, module: linear, x: [256, 784], seed: 4 },
  { layer: 'Conv2d 32->64 3x3 on 14x14', batch: 1, module: conv, x: [1, 32, 14, 14], seed: 5 },
  { layer: 'Conv2d 32->64 3x3 on 14x14', batch: 64, module: conv, x: [64, 32, 14, 14], seed: 6 },
]
  .filter((c) => (BATCH === null || c.batch === Number(BATCH)) && (ONLY === null || c.layer.toLowerCase().includes(ONLY.toLowerCase())))
  .map((c) => ({ ...c, x: kiln.randn(c.x, { seed: c.seed }) }));
if (cases.length === 0) throw new Error(`bench:quant: no case matches --batch ${BATCH ?? 'any'} --only ${ONLY ?? 'any'} (batches 1, 64, 256; layers Linear, Conv2d)`);

console.log(`${BACKEND} backend, ${kiln.simdLevel()}, ${kiln.numThreads()} threads; ${ROUNDS} alternating rounds of ${SECONDS} s per variant`);
const rows = [];
for (const c of cases) {
  const calls = variants(c.module, c.x);
  const times = Object.fromEntries(Object.keys(calls).map((k) => [k, []]));
  for (let r = 0; r < ROUNDS; r++) for (const [name, call] of Object.entries(calls)) times[name].push(msPerCall(call));
  const best = (name) => Math.min(...times[name].map((t) => t.fastest));
  const median = (name) => times[name].map((t) => t.mean).sort((a, b) => a - b)[times[name].length >> 1];
  for (const name of Object.keys(calls)) {
    rows.push({ layer: c.layer, batch: c.batch, variant: name, fastestMs: best(name), medianMeanMs: median(name), speedup: best('float32') / best(name) });
  }
}

const f = (v, d = 3) => v.toFixed(d);
console.log('\n| layer | batch | variant | fastest call ms | median of round means ms | speed-up vs float32 (fastest) |\n|---|---:|---|---:|---:|---:|');
for (const r of rows) console.log(`| ${r.layer} | ${r.batch} | ${r.variant} | ${f(r.fastestMs)} | ${f(r.medianMeanMs)} | ${f(r.speedup, 2)}x |`);
const out = arg('--json', null);
if (out) writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), simd: kiln.simdLevel(), threads: kiln.numThreads(), rounds: ROUNDS, rows }, null, 2));
