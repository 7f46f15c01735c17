// The Chromium half of `npm run bench:onnx` (bench/onnx-chromium.mjs serves and drives this page,
// cross-origin isolated): the same ONNX files on Kiln's threaded WASM build and on
// onnxruntime-web's threaded WASM backend, the same thread count, timed in alternation as in
// Node (bench/onnx-timing.mjs). onnxruntime-web is served from bench/node_modules. Kiln's threaded
// build also runs capped at one thread (the same instance, `setBackend('wasm', { threads: 1 })`),
// in the same alternation: what its threads gain over its own one thread in this browser.
import * as kiln from '../../dist-web/kiln.js';
import * as ort from '../node_modules/onnxruntime-web/dist/ort.wasm.min.mjs';
import { alternate, benchInput, maxDifference } from '../onnx-timing.mjs';

const out = document.getElementById('out');
const log = (line) => (out.textContent += `${line}\n`);

function kilnPeer(bytes, shape, input) {
  const model = kiln.onnx.load(bytes);
  const x = kiln.tensor(input, shape);
  const dispose = () => {
    x.dispose();
    model.dispose();
  };
  // Inference as users run it (no autograd record), as in bench/onnx-models.mjs.
  return { run: async () => kiln.noGrad(() => kiln.tidy(() => model.forward(x).dataSync())), dispose };
}

async function ortPeer(bytes, shape, input) {
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', input, shape) };
  return { run: async () => (await session.run(feeds))[session.outputNames[0]].data, dispose: () => session.release() };
}

/** A peer's run on Kiln capped at one thread, the cap lifted again after it. */
function onOneThread(run, threads) {
  return async () => {
    await kiln.setBackend('wasm', { threads: 1 });
    try {
      return await run();
    } finally {
      await kiln.setBackend('wasm', { threads });
    }
  };
}

/**
 * cases: [{ name, batch, url, shape }]; threads: the count both runtimes get (ort's numThreads is
 * read once, when its WASM starts, so one page load serves one count).
 * Returns { kilnVariant, threads, isolated, rows: [{ name, batch, kiln, ort, kilnOneThread, agree }] }.
 */
async function run({ cases, threads }) {
  await kiln.setBackend('wasm', { threads });
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.wasmPaths = new URL('../node_modules/onnxruntime-web/dist/', import.meta.url).href;
  const result = { kilnVariant: kiln.wasmVariant(), threads: kiln.numThreads(), isolated: globalThis.crossOriginIsolated === true, rows: [] };
  log(`Kiln ${result.kilnVariant} build, ${result.threads} threads; onnxruntime-web numThreads ${threads}; isolated: ${result.isolated}`);
  for (const c of cases) {
    const bytes = new Uint8Array(await (await fetch(c.url)).arrayBuffer());
    const input = benchInput(c.shape);
    const peers = [kilnPeer(bytes, c.shape, input), await ortPeer(bytes, c.shape, input)];
    const { ms, outputs } = await alternate([...peers.map((p) => p.run), onOneThread(peers[0].run, threads)]);
    peers[0].dispose();
    await peers[1].dispose();
    const agree = Math.max(maxDifference(outputs[0], outputs[1]), maxDifference(outputs[2], outputs[1]));
    const row = { name: c.name, batch: c.batch, kiln: ms[0], ort: ms[1], kilnOneThread: ms[2], agree };
    log(`${c.name} batch ${c.batch}: Kiln ${ms[0].toFixed(1)} ms (${ms[2].toFixed(1)} on one thread), onnxruntime-web ${ms[1].toFixed(1)} ms`);
    result.rows.push(row);
  }
  return result;
}

window.onnxBench = { run };
