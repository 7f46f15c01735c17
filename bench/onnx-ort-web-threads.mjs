// A child of bench/onnx-models.mjs: onnxruntime-web's WASM backend in Node with N threads (it
// starts worker_threads). onnxruntime-web reads env.wasm.numThreads once, when its WASM starts, so
// the threaded rows need a process of their own. Prints one JSON line:
// [{ name, batch, ms, summary }] (summary: bench/onnx-timing.mjs's outputSummary).
//
//   node bench/onnx-ort-web-threads.mjs THREADS CASES_JSON
import { readFileSync } from 'node:fs';
import { benchInput, median, outputSummary } from './onnx-timing.mjs';

const ort = await import('onnxruntime-web');
const threads = Number(process.argv[2]);
const cases = JSON.parse(process.argv[3]);
ort.env.wasm.numThreads = threads;

const rows = [];
for (const c of cases) {
  const session = await ort.InferenceSession.create(readFileSync(c.path), { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', benchInput(c.shape), c.shape) };
  const run = async () => (await session.run(feeds))[session.outputNames[0]].data;
  const output = await run();
  const ms = await median(run);
  await session.release();
  rows.push({ name: c.name, batch: c.batch, ms, summary: outputSummary(output) });
}
console.log(JSON.stringify(rows));
process.exit(0); // ort-web's worker threads would keep the process alive
