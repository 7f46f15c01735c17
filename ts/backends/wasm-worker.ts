/**
 * A worker of the threaded WASM build (bundled as dist-web/kiln-worker.js): instantiates the
 * module the page compiled, on the page's shared memory, then runs kiln-core's pool loop
 * (wasm_pool.rs) for the rest of its life. If its instance traps, it tells the pool, so the page's
 * thread stops waiting for its chunk and reports the error.
 */

import { createGlue } from 'kiln-wasm-web-threads';

interface WorkerScope {
  addEventListener(type: 'message', listener: (event: { data: { module: unknown; memory: unknown } }) => void, options?: { once: boolean }): void;
  postMessage(message: unknown): void;
}
const scope = globalThis as unknown as WorkerScope;
const glue = createGlue();
const pool = glue as unknown as { poolWorkerLoop(): void; poolWorkerFailed(): void };

scope.addEventListener(
  'message',
  async ({ data }) => {
    try {
      await glue.default({ module_or_path: data.module, memory: data.memory });
    } catch (e) {
      scope.postMessage({ error: `instantiating the module: ${String(e)}` });
      return;
    }
    try {
      pool.poolWorkerLoop();
    } catch (e) {
      try {
        pool.poolWorkerFailed();
      } finally {
        scope.postMessage({ error: String(e) });
      }
    }
  },
  { once: true },
);
