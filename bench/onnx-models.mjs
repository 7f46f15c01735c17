// ONNX inference latency, Kiln against onnxruntime on the same files in one run:
//   - Kiln native (kiln.onnx.load on the native addon) vs onnxruntime-node, the same thread count;
//   - Kiln WASM (one thread) vs onnxruntime-web's WASM backend in Node (one thread).
// Models: the onnx wheel's `light` ResNet-50 and SqueezeNet (bench/onnx_models.py makes their
// batch dynamic) and a 4-layer Transformer encoder (d 256, 4 heads, feed-forward 1024, 128 tokens)
// that Kiln exports with kiln.onnx.save. Batch 1 and 8; the median of a few runs after a warm-up;
// outputs are checked against each other before timing.
//
//   npm run bench:onnx [-- --only resnet50 --batches 1]
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

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

function transformerFile(batch) {
  const path = join(CACHE, `transformer-b${batch}.onnx`);
  class Encoder extends kiln.nn.Module {
    layers = Array.from({ length: 4 }, (_, i) => new kiln.nn.TransformerEncoderLayer(256, 4, { dimFeedforward: 1024, seed: i }));
    forward(x) {
      return this.layers.reduce((h, layer) => layer.forward(h), x);
    }
  }
  const model = new Encoder();
  kiln.onnx.save(model, [kiln.randn([batch, 128, 256], { seed: 1 })], path, { inputNames: ['x'], outputNames: ['y'] });
  model.dispose();
  return path;
}

const cases = [];
for (const name of only) {
  for (const batch of batches) {
    if (name === 'transformer') cases.push({ name, batch, path: transformerFile(batch), shape: [batch, 128, 256] });
    else cases.push({ name, batch, path: join(CACHE, `${name}.onnx`), shape: [batch, 3, 224, 224] });
  }
}

// 2. Timing: median milliseconds of up to 5 runs (at least 3, at most ~6 s) after one warm-up.
async function median(fn) {
  await fn();
  const times = [];
  const start = performance.now();
  while (times.length < 3 || (times.length < 5 && performance.now() - start < 6000)) {
    const t = performance.now();
    await fn();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

function maxDifference(a, b) {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  return worst;
}

async function kilnRow(backend, c, input) {
  kiln.setBackend(backend);
  const model = kiln.onnx.load(c.path);
  const x = kiln.tensor(input, c.shape);
  const run = () => kiln.tidy(() => model.forward(x).dataSync());
  const out = run();
  const ms = await median(async () => run());
  x.dispose();
  model.dispose();
  kiln.setBackend('native');
  return { ms, out };
}

async function ortRow(ort, options, c, input) {
  const session = await ort.InferenceSession.create(readFileSync(c.path), options);
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', input, c.shape) };
  const run = async () => {
    const result = await session.run(feeds);
    return result[session.outputNames[0]].data;
  };
  const out = await run();
  const ms = await median(run);
  await session.release();
  return { ms, out };
}

const threads = kiln.numThreads();
ortWeb.env.wasm.numThreads = 1;
const nodeOptions = { executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' };
const webOptions = { executionProviders: ['wasm'], graphOptimizationLevel: 'all' };

console.log(`ONNX inference, median ms (lower is better); Kiln native ${threads} threads (SIMD ${kiln.simdLevel()}) vs onnxruntime-node intraOpNumThreads ${threads}; Kiln WASM vs onnxruntime-web WASM, 1 thread each`);
const rows = [];
for (const c of cases) {
  const n = c.shape.reduce((a, b) => a * b, 1);
  const input = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37));
  const native = await kilnRow('native', c, input);
  const ortN = await ortRow(ortNode, nodeOptions, c, input);
  const wasm = await kilnRow('wasm', c, input);
  const ortW = await ortRow(ortWeb, webOptions, c, input);
  const agree = Math.max(maxDifference(native.out, ortN.out), maxDifference(wasm.out, ortW.out));
  if (!(agree < 1e-3)) throw new Error(`${c.name} batch ${c.batch}: Kiln and onnxruntime disagree (max relative difference ${agree})`);
  const row = { model: c.name, batch: c.batch, kilnNative: native.ms, ortNode: ortN.ms, kilnWasm: wasm.ms, ortWeb: ortW.ms };
  rows.push(row);
  console.log(`${c.name.padEnd(12)} batch ${String(c.batch).padEnd(2)} | kiln ${native.ms.toFixed(1).padStart(8)}  ort-node ${ortN.ms.toFixed(1).padStart(8)}  ratio ${(ortN.ms / native.ms).toFixed(2)} | kiln-wasm ${wasm.ms.toFixed(1).padStart(8)}  ort-web ${ortW.ms.toFixed(1).padStart(8)}  ratio ${(ortW.ms / wasm.ms).toFixed(2)}`);
}
console.log('ratio = onnxruntime ms / Kiln ms: above 1, Kiln is faster.');
mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
writeFileSync(join(ROOT, 'bench/results/onnx-latest.json'), JSON.stringify({ date: new Date().toISOString(), threads, simd: kiln.simdLevel(), rows }, null, 1));
