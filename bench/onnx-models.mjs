// ONNX inference latency, Kiln against onnxruntime on the same files in one run:
//   - Kiln native (kiln.onnx.load on the native addon) vs onnxruntime-node, the same thread count;
//   - Kiln WASM (one thread) vs onnxruntime-web's WASM backend in Node (one thread);
//   - Kiln's threaded WASM build in Node (worker_threads) vs onnxruntime-web's threaded WASM, the
//     same thread count (a child process, bench/onnx-ort-web-threads.mjs), and Kiln's build capped
//     at one thread in the same alternation (printed beside the row);
//   - in Chromium (bench/onnx-chromium.mjs, a cross-origin isolated page): Kiln's threaded WASM
//     build vs onnxruntime-web's threaded WASM backend, the same thread count, and Kiln's build
//     capped at one thread in the same alternation (printed beside the row: what its threads gain).
// Models: the onnx wheel's `light` ResNet-50 and SqueezeNet (bench/onnx_models.py makes their
// batch dynamic) and a 4-layer Transformer encoder (d 256, 4 heads, feed-forward 1024, 128 tokens)
// that Kiln exports with kiln.onnx.save. Batch 1 and 8; Kiln and its peer run in alternation (a
// burst of load on the shared machine falls on both), the median of 3 to 5 runs each after a
// warm-up; outputs are checked against each other.
//
//   npm run bench:onnx [-- --only=resnet50 --batches=1 --no-chromium --no-threads --no-wasm]
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromiumRows } from './onnx-chromium.mjs';
import { alternate, benchInput, maxDifference, outputSummary } from './onnx-timing.mjs';
import { transformerFile } from './onnx-transformer.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const kiln = await import(join(ROOT, 'dist/index.js'));
const require = createRequire(import.meta.url);
const ortNode = require('onnxruntime-node');
const ortWeb = await import('onnxruntime-web');

const arg = (name, fallback) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? fallback;
const only = arg('only', 'resnet50,squeezenet,transformer').split(',');
const batches = arg('batches', '1,8').split(',').map(Number);
const CACHE = join(homedir(), '.cache', 'kiln', 'onnx-bench');
mkdirSync(CACHE, { recursive: true });

// 1. The models.
const python = join(homedir(), '.cache', 'kiln', 'venv', 'bin', 'python');
const prepared = spawnSync(python, [join(ROOT, 'bench/onnx_models.py'), CACHE], { stdio: 'inherit' });
if (prepared.status !== 0) throw new Error('bench/onnx_models.py failed (it needs the onnx wheel: npm test or scripts/python.mjs installs it)');

const cases = [];
for (const name of only) {
  for (const batch of batches) {
    if (name === 'transformer') cases.push({ name, batch, path: transformerFile(kiln, CACHE, batch), shape: [batch, 128, 256] });
    else cases.push({ name, batch, path: join(CACHE, `${name}.onnx`), shape: [batch, 3, 224, 224] });
  }
}

/** Kiln on `backend` with the model loaded: run() returns the output (the backend is switched per call, so peers can alternate). */
function kilnRunner(backend, c, input) {
  kiln.setBackend(backend);
  const model = kiln.onnx.load(c.path);
  const x = kiln.tensor(input, c.shape);
  kiln.setBackend('native');
  const run = async () => {
    kiln.setBackend(backend);
    try {
      // Inference as users run it (PyTorch's no_grad): no autograd record, fused Conv+BN on.
      return kiln.noGrad(() => kiln.tidy(() => model.forward(x).dataSync()));
    } finally {
      kiln.setBackend('native');
    }
  };
  const dispose = () => {
    kiln.setBackend(backend);
    x.dispose();
    model.dispose();
    kiln.setBackend('native');
  };
  return { run, dispose };
}

/** An onnxruntime session on the file: run() returns the first output. */
async function ortRunner(ort, options, c, input) {
  const session = await ort.InferenceSession.create(readFileSync(c.path), options);
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', input, c.shape) };
  const run = async () => (await session.run(feeds))[session.outputNames[0]].data;
  return { run, dispose: () => session.release() };
}

/** Kiln and its onnxruntime peer timed in alternation: { kiln: { ms, out }, ort: { ms, out } }. */
async function pair(kilnPeer, ortPeer) {
  const { ms, outputs } = await alternate([kilnPeer.run, ortPeer.run]);
  kilnPeer.dispose();
  await ortPeer.dispose();
  return { kiln: { ms: ms[0], out: outputs[0] }, ort: { ms: ms[1], out: outputs[1] } };
}

const threads = kiln.numThreads();
ortWeb.env.wasm.numThreads = 1;
const nodeOptions = { executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' };
const webOptions = { executionProviders: ['wasm'], graphOptimizationLevel: 'all' };

const withWasm = !process.argv.includes('--no-wasm');
const withThreads = withWasm && !process.argv.includes('--no-threads');
const withChromium = withThreads && !process.argv.includes('--no-chromium');
console.log(`ONNX inference, median ms (lower is better); Kiln native ${threads} threads (SIMD ${kiln.simdLevel()}) vs onnxruntime-node intraOpNumThreads ${threads}; Kiln WASM vs onnxruntime-web WASM, 1 thread each`);
const rows = [];
for (const c of cases) {
  const input = benchInput(c.shape);
  const { kiln: native, ort: ortN } = await pair(kilnRunner('native', c, input), await ortRunner(ortNode, nodeOptions, c, input));
  const { kiln: wasm, ort: ortW } = withWasm ? await pair(kilnRunner('wasm', c, input), await ortRunner(ortWeb, webOptions, c, input)) : { kiln: { ms: NaN, out: native.out }, ort: { ms: NaN, out: ortN.out } };
  const agree = Math.max(maxDifference(native.out, ortN.out), maxDifference(wasm.out, ortW.out));
  if (!(agree < 1e-3)) throw new Error(`${c.name} batch ${c.batch}: Kiln and onnxruntime disagree (max relative difference ${agree})`);
  const row = { model: c.name, batch: c.batch, kilnNative: native.ms, ortNode: ortN.ms, kilnWasm: wasm.ms, ortWeb: ortW.ms, wasmSummary: outputSummary(wasm.out) };
  rows.push(row);
  console.log(`${c.name.padEnd(12)} batch ${String(c.batch).padEnd(2)} | kiln ${native.ms.toFixed(1).padStart(8)}  ort-node ${ortN.ms.toFixed(1).padStart(8)}  ratio ${(ortN.ms / native.ms).toFixed(2)} | kiln-wasm ${wasm.ms.toFixed(1).padStart(8)}  ort-web ${ortW.ms.toFixed(1).padStart(8)}  ratio ${(ortW.ms / wasm.ms).toFixed(2)}`);
}

// 3. onnxruntime-web with threads in Node (a child process: its thread count is fixed at start).
if (withThreads) {
  const child = spawnSync(process.execPath, [join(ROOT, 'bench/onnx-ort-web-threads.mjs'), String(threads), JSON.stringify(cases)], { encoding: 'utf8', cwd: join(ROOT, 'bench'), maxBuffer: 1 << 26 });
  if (child.status !== 0) throw new Error(`bench/onnx-ort-web-threads.mjs failed:\n${child.stderr}`);
  const threaded = JSON.parse(child.stdout.trim().split('\n').pop());
  for (const [i, r] of threaded.entries()) {
    const agree = maxDifference(Float32Array.from(r.summary.head), Float32Array.from(rows[i].wasmSummary.head));
    if (!(agree < 1e-3) || !(r.agree < 1e-3)) throw new Error(`${r.name} batch ${r.batch}: onnxruntime-web with ${threads} threads disagrees with Kiln WASM (${agree}, threaded: ${r.agree})`);
    Object.assign(rows[i], { ortWebThreadsNode: r.ms, kilnWasmThreadsNode: r.kilnMs, kilnWasmThreadsNodeOneThread: r.kilnOneMs });
    console.log(`${r.name.padEnd(12)} batch ${String(r.batch).padEnd(2)} | Node, ${threads} threads: kiln-wasm ${r.kilnMs.toFixed(1).padStart(8)}  ort-web ${r.ms.toFixed(1).padStart(8)}  ratio ${(r.ms / r.kilnMs).toFixed(2)} | kiln-wasm on 1 thread ${r.kilnOneMs.toFixed(1).padStart(8)}`);
  }
}

// 4. Chromium: Kiln's threaded WASM build vs onnxruntime-web's, same thread count.
if (withChromium) {
  const page = await chromiumRows(cases, { threads, modelDir: CACHE });
  if (!page.isolated || page.kilnVariant !== 'threads') throw new Error(`the Chromium page did not run Kiln's threaded build (variant ${page.kilnVariant}, isolated ${page.isolated})`);
  for (const [i, r] of page.rows.entries()) {
    if (!(r.agree < 1e-3)) throw new Error(`${r.name} batch ${r.batch}: Kiln and onnxruntime-web disagree in Chromium (max relative difference ${r.agree})`);
    Object.assign(rows[i], { kilnChromium: r.kiln, ortChromium: r.ort, kilnChromiumOneThread: r.kilnOneThread });
    console.log(`${r.name.padEnd(12)} batch ${String(r.batch).padEnd(2)} | Chromium, ${page.threads} threads: kiln-wasm ${r.kiln.toFixed(1).padStart(8)}  ort-web ${r.ort.toFixed(1).padStart(8)}  ratio ${(r.ort / r.kiln).toFixed(2)} | kiln-wasm on 1 thread ${r.kilnOneThread.toFixed(1).padStart(8)}`);
  }
}

// 5. One table (markdown, as docs/onnx.md shows it).
const fmt = (ms) => (ms === undefined || Number.isNaN(ms) ? '-' : ms.toFixed(1));
const ratio = (ort, k) => (ort === undefined || k === undefined || Number.isNaN(ort / k) ? '-' : (ort / k).toFixed(2));
console.log(`\n| model | batch | Kiln native | ort-node | ratio | Kiln WASM 1t | ort-web 1t | ratio | Kiln WASM ${threads}t (Node) | ort-web ${threads}t (Node) | ratio | Kiln WASM ${threads}t (Chromium) | ort-web ${threads}t (Chromium) | ratio |`);
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.model} | ${r.batch} | ${fmt(r.kilnNative)} | ${fmt(r.ortNode)} | ${ratio(r.ortNode, r.kilnNative)} | ${fmt(r.kilnWasm)} | ${fmt(r.ortWeb)} | ${ratio(r.ortWeb, r.kilnWasm)} | ${fmt(r.kilnWasmThreadsNode)} | ${fmt(r.ortWebThreadsNode)} | ${ratio(r.ortWebThreadsNode, r.kilnWasmThreadsNode)} | ${fmt(r.kilnChromium)} | ${fmt(r.ortChromium)} | ${ratio(r.ortChromium, r.kilnChromium)} |`);
}
console.log('ms are medians; ratio = onnxruntime ms / Kiln ms: above 1, Kiln is faster.');
for (const r of rows) delete r.wasmSummary;
mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
writeFileSync(join(ROOT, 'bench/results/onnx-latest.json'), JSON.stringify({ date: new Date().toISOString(), threads, simd: kiln.simdLevel(), rows }, null, 1));
