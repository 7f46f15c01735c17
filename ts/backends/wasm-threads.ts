/**
 * Starts the Web Workers of the threaded WASM build: each instantiates the same compiled module
 * on the same shared memory (wasm-worker.ts) and enters kiln-core's pool loop (wasm_pool.rs).
 * No Node imports: part of the browser bundle.
 */

export interface WorkerLike {
  postMessage(message: unknown): void;
  terminate(): void;
  addEventListener(type: string, listener: (event: { data?: unknown; message?: string }) => void): void;
}
type WorkerConstructor = new (url: URL, options: { type: 'module'; name?: string }) => WorkerLike;

/** How long the workers may take to start before init gives up waiting (it keeps those started). */
const START_TIMEOUT_MS = 20_000;

/**
 * Starts `count` more workers, pushing each to `workers` (so that its instance's owner can
 * terminate them), and resolves once every worker in `workers` is in the pool loop (poolWorkers()
 * says so), or with fewer after START_TIMEOUT_MS: kernels use the workers that started. A worker
 * joining while a kernel runs waits for the next one (wasm_pool.rs), so kernels may run before
 * this resolves.
 */
export async function startWorkers(count: number, module: unknown, memory: unknown, poolWorkers: () => number, workers: WorkerLike[]): Promise<number> {
  const Worker = (globalThis as unknown as { Worker: WorkerConstructor }).Worker;
  const failures: string[] = [];
  for (let i = 0; i < count; i++) {
    // Written out in full so bundlers (Vite, webpack, esbuild with a plugin) find and emit the worker.
    const worker = new Worker(new URL('./kiln-worker.js', import.meta.url), { type: 'module', name: `kiln-${workers.length + 1}` });
    worker.addEventListener('message', (e) => {
      const data = e.data as { error?: string } | undefined;
      if (data?.error) failures.push(data.error);
    });
    worker.addEventListener('error', (e) => failures.push(e.message ?? 'worker error'));
    worker.postMessage({ module, memory });
    workers.push(worker);
  }
  const start = Date.now();
  while (poolWorkers() < workers.length && failures.length === 0 && Date.now() - start < START_TIMEOUT_MS) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  if (failures.length > 0) console.warn(`kiln: ${failures.length} WASM worker(s) failed to start (${failures[0]}); running on ${1 + poolWorkers()} thread(s)`);
  return poolWorkers();
}
