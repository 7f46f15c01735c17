/**
 * A worker thread of the threaded WASM build in Node (wasm-node-threads.ts): instantiates the
 * module on the shared memory it is given, then runs kiln-core's pool loop (wasm_pool.rs) for the
 * rest of its life. If its instance traps it tells the pool, so the caller stops waiting.
 */

import { createRequire } from 'node:module';
import { workerData } from 'node:worker_threads';

const { glue: path, module, memory } = workerData as { glue: string; module: unknown; memory: unknown };
const glue = createRequire(import.meta.url)(path) as { initSync(o: { module: unknown; memory: unknown }): unknown; poolWorkerLoop(): void; poolWorkerFailed(): void };
glue.initSync({ module, memory });
try {
  glue.poolWorkerLoop();
} catch (e) {
  glue.poolWorkerFailed();
  throw e;
}
