/**
 * Kiln's threaded WASM build in Node: the module browsers run with Web Workers (wasm-web.ts,
 * wasm_pool.rs) with worker_threads in their place. Each worker instantiates the same compiled
 * module on the same shared memory (wasm-node-worker.ts) and enters kiln-core's pool loop; the
 * calling thread never blocks in the pool, so nothing differs from the page. Chosen with
 * `KILN_WASM_VARIANT=threads`; `KILN_WASM_THREADS=N` sets the thread count (the caller's
 * included; default: os.availableParallelism()).
 *
 * The build's glue is wasm-bindgen's `web` output (bindings/wasm/pkg-web/), an ES module,
 * loaded with require() (Node 20.19+ and 22.12+, the versions package.json admits) so that
 * setBackend stays synchronous; its `initSync` instantiates on a memory shared by all threads.
 */

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { WasmExports } from './wasm-guard.js';

/** How long the workers may take to start before loading gives up waiting (it keeps those started). */
const START_TIMEOUT_MS = 20_000;

interface ThreadsGlue extends WasmExports {
  initSync(options: { module: unknown; memory?: unknown }): { memory: unknown };
  poolWorkers(): number;
}

/** The thread count asked for by KILN_WASM_THREADS, or every core. */
function threadCount(): number {
  const asked = process.env.KILN_WASM_THREADS;
  if (asked === undefined || asked === '') return availableParallelism();
  const n = Number(asked);
  if (!(Number.isInteger(n) && n >= 1)) throw new Error(`kiln: KILN_WASM_THREADS must be an integer >= 1, got '${asked}'`);
  return n;
}

/** The threaded build's exports with its workers running (they end with the process). */
export function loadThreadedWasm(glueUrl: URL, wasmUrl: URL): WasmExports {
  const glue = createRequire(import.meta.url)(fileURLToPath(glueUrl)) as ThreadsGlue;
  const WebAssembly = (globalThis as unknown as { WebAssembly: { Module: new (bytes: Uint8Array) => unknown } }).WebAssembly;
  const module = new WebAssembly.Module(readFileSync(wasmUrl));
  const { memory } = glue.initSync({ module });
  const count = threadCount() - 1;
  const failures: string[] = [];
  // A worker inherits the process's flags, but refuses --input-type (of `node -e` scripts).
  const execArgv = process.execArgv.filter((a) => !a.startsWith('--input-type'));
  for (let i = 0; i < count; i++) {
    const worker = new Worker(new URL('./wasm-node-worker.js', import.meta.url), { workerData: { glue: fileURLToPath(glueUrl), module, memory }, name: `kiln-${i + 1}`, execArgv });
    worker.on('error', (e) => failures.push(String(e)));
    // Workers sleep in the pool between kernels; they must not keep the process alive.
    worker.unref();
  }
  // Wait without returning to the event loop (setBackend is synchronous): workers start on their
  // own threads, and a kernel run before they join simply uses fewer threads.
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const start = Date.now();
  while (glue.poolWorkers() < count && Date.now() - start < START_TIMEOUT_MS) Atomics.wait(nap, 0, 0, 2);
  if (glue.poolWorkers() < count) console.warn(`kiln: ${count - glue.poolWorkers()} of ${count} WASM worker thread(s) did not start${failures.length > 0 ? ` (${failures[0]})` : ''}; running on ${1 + glue.poolWorkers()} thread(s)`);
  return glue;
}
