/**
 * Kiln's threaded WASM build in Node: the module browsers run with Web Workers (wasm-web.ts,
 * wasm_pool.rs) with worker_threads in their place. Each worker instantiates the same compiled
 * module on the same shared memory (wasm-node-worker.ts) and enters kiln-core's pool loop; the
 * calling thread never blocks in the pool, so nothing differs from the page. Chosen by
 * `setBackend('wasm', { threads })` (wasm.ts).
 *
 * The build's glue is wasm-bindgen's `web` output, an ES module, loaded with require() (Node
 * 20.19+ and 22.12+, the versions package.json admits) so that setBackend stays synchronous; its
 * `initSync` instantiates on a memory shared by all threads.
 */

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { WasmExports } from './wasm-guard.js';

/** How long new workers may take to start before setBackend gives up waiting (it keeps those started). */
const START_TIMEOUT_MS = 20_000;

interface ThreadsGlue extends WasmExports {
  initSync(options: { module: unknown; memory?: unknown }): { memory: unknown };
  poolWorkers(): number;
  setNumThreads(n: number): number;
}

/** One instance of the threaded build and its workers. */
export interface NodeThreadPool {
  exports: WasmExports;
  /**
   * Runs the kernels on `threads` threads (the caller's included): starts the workers still
   * missing, waiting for them to join, then caps the pool there. Returns the count in use.
   */
  setThreads(threads: number): number;
  /** Ends the workers (after the instance faulted: a fresh one gets its own). */
  terminate(): void;
}

/** The threaded build's exports with `threads` threads running (workers end with the process). */
export function loadThreadedWasm(glueUrl: URL, wasmUrl: URL, threads: number): NodeThreadPool {
  const gluePath = fileURLToPath(glueUrl);
  const require = createRequire(import.meta.url);
  // The glue keeps its instance in a module variable: a fresh copy for a fresh instance (after a fault).
  delete require.cache[require.resolve(gluePath)];
  const glue = require(gluePath) as ThreadsGlue;
  const WebAssembly = (globalThis as unknown as { WebAssembly: { Module: new (bytes: Uint8Array) => unknown } }).WebAssembly;
  const module = new WebAssembly.Module(readFileSync(wasmUrl));
  const { memory } = glue.initSync({ module });
  const workers: Worker[] = [];
  const failures: string[] = [];
  // A worker inherits the process's flags, but refuses --input-type (of `node -e` scripts).
  const execArgv = process.execArgv.filter((a) => !a.startsWith('--input-type'));

  function startWorkers(count: number): void {
    for (let i = 0; i < count; i++) {
      const worker = new Worker(new URL('./wasm-node-worker.js', import.meta.url), {
        workerData: { glue: gluePath, module, memory },
        name: `kiln-${workers.length + 1}`,
        execArgv,
      });
      worker.on('error', (e) => failures.push(String(e)));
      // Workers sleep in the pool between kernels; they must not keep the process alive.
      worker.unref();
      workers.push(worker);
    }
    // Wait without returning to the event loop (setBackend is synchronous): workers start on their
    // own threads, and a kernel run before they join simply uses fewer threads.
    const nap = new Int32Array(new SharedArrayBuffer(4));
    const start = Date.now();
    while (glue.poolWorkers() < workers.length && Date.now() - start < START_TIMEOUT_MS) Atomics.wait(nap, 0, 0, 2);
    const missing = workers.length - glue.poolWorkers();
    if (missing > 0) console.warn(`kiln: ${missing} of ${workers.length} WASM worker thread(s) did not start${failures.length > 0 ? ` (${failures[0]})` : ''}; running on ${1 + glue.poolWorkers()} thread(s)`);
  }

  const pool: NodeThreadPool = {
    exports: glue,
    setThreads(n) {
      if (n - 1 > workers.length) startWorkers(n - 1 - workers.length);
      return glue.setNumThreads(n);
    },
    terminate() {
      for (const worker of workers) void worker.terminate();
    },
  };
  pool.setThreads(threads);
  return pool;
}
