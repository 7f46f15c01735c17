// A child of bench/onnx-models.mjs: the threaded WASM rows in Node, N threads each, in
// alternation: Kiln's threaded WASM build on worker_threads (`kiln.setBackend('wasm', { threads:
// N })`, as a user asks for it) and onnxruntime-web's WASM backend (it starts worker_threads too).
// onnxruntime-web reads env.wasm.numThreads once, when its WASM starts (the parent's runs on one
// thread), so these rows need a process of their own. Prints one JSON line:
// [{ name, batch, ms, kilnMs, kilnOneMs, summary, agree }] (kilnOneMs: Kiln's threaded build capped
// at one thread, `setBackend('wasm', { threads: 1 })` on the same instance, in the same
// alternation; summary: bench/onnx-timing.mjs's outputSummary of onnxruntime-web's output; agree:
// the largest relative difference from Kiln's).
//
//   node bench/onnx-ort-web-threads.mjs THREADS CASES_JSON
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { alternate, benchInput, maxDifference, outputSummary } from './onnx-timing.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const kiln = await import(join(ROOT, 'dist/index.js'));
const ort = await import('onnxruntime-web');
const threads = Number(process.argv[2]);
const cases = JSON.parse(process.argv[3]);
ort.env.wasm.numThreads = threads;
kiln.setBackend('wasm', { threads });
if (kiln.numThreads() !== threads) throw new Error(`Kiln's WASM runs on ${kiln.numThreads()} thread(s), not ${threads}`);

const rows = [];
for (const c of cases) {
  const input = benchInput(c.shape);
  const session = await ort.InferenceSession.create(readFileSync(c.path), { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', input, c.shape) };
  const model = kiln.onnx.load(c.path);
  const x = kiln.tensor(input, c.shape);
  const runKiln = async () => kiln.noGrad(() => kiln.tidy(() => model.forward(x).dataSync()));
  const runOrt = async () => (await session.run(feeds))[session.outputNames[0]].data;
  const runKilnOne = async () => {
    kiln.setBackend('wasm', { threads: 1 });
    try {
      return await runKiln();
    } finally {
      kiln.setBackend('wasm', { threads });
    }
  };
  const { ms, outputs } = await alternate([runKiln, runOrt, runKilnOne]);
  await session.release();
  x.dispose();
  model.dispose();
  const agree = Math.max(maxDifference(outputs[0], outputs[1]), maxDifference(outputs[2], outputs[1]));
  rows.push({ name: c.name, batch: c.batch, ms: ms[1], kilnMs: ms[0], kilnOneMs: ms[2], summary: outputSummary(outputs[1]), agree });
}
console.log(JSON.stringify(rows));
process.exit(0); // ort-web's worker threads would keep the process alive
