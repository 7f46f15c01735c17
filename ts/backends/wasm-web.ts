/**
 * The WASM backend in browsers: the wasm-bindgen `web` builds (ES modules whose default export
 * fetches and instantiates the .wasm), behind the same `Backend` contract and trap handling as the
 * Node loader (wasm.ts). No Node imports: this module is part of the browser bundle.
 *
 * Three builds (wasm-features.ts): the threaded one when the page is cross-origin isolated (only
 * then do browsers allow the SharedArrayBuffer its memory is), with one Web Worker per extra
 * thread (wasm-threads.ts); else relaxed SIMD if the engine has it; else plain SIMD128.
 *
 * After a fault (a Rust panic aborts a wasm32 instance: wasm-guard.ts) `restart()` makes a fresh
 * instance of the same compiled module, synchronously, from a fresh copy of the glue (one copy
 * holds one instance: scripts/build-web.mjs), so the engine moves new tensors to it on the next
 * call, as in Node. The threaded build's workers are restarted too, in the background.
 */

import { createGlue as simdGlue } from 'kiln-wasm-web';
import { createGlue as relaxedGlue } from 'kiln-wasm-web-relaxed';
import { createGlue as threadsGlue } from 'kiln-wasm-web-threads';
import type { Backend } from './backend.js';
import { guardTraps, type WasmExports } from './wasm-guard.js';
import { parseVariant, relaxedSimdSupported, VARIANT_FILES, type WasmVariant } from './wasm-features.js';
import { startWorkers, type WorkerLike } from './wasm-threads.js';

/**
 * Options of the browser entry's `init` (exported there as InitOptions): where the .wasm files
 * are served, how many threads, and (for tests) which build.
 */
export interface WasmWebOptions {
  /** Directory (URL) the kiln_wasm*_bg.wasm files are served from (default: next to the bundle). */
  wasmDir?: string | URL;
  /**
   * Threads for the kernels, the page's thread included: 'auto' (default) uses
   * navigator.hardwareConcurrency when the page is cross-origin isolated, else 1.
   */
  threads?: number | 'auto';
  /** Force a build (testing): 'simd', 'relaxed' or 'threads'. */
  variant?: WasmVariant;
}

/** The loaded backend and what the browser API reports about it. */
export interface WasmWeb {
  backend: Backend;
  variant: WasmVariant;
  /** The instance's linear memory (its buffer grows, never shrinks). */
  memory: { buffer: ArrayBufferLike };
  /** Caps the kernels' threads (1..threads started); returns the number in use. */
  setNumThreads(n: number): number;
  /**
   * `setBackend('wasm', { threads })` on this instance: the threaded build starts the workers
   * still missing (resolving once they run) and caps the pool; false when this is a
   * single-threaded build and the page could run more than one thread (a threaded instance is
   * needed). `call` names the user's call in the warning given when the page cannot run threads.
   */
  setThreads(threads: number | 'auto', call: string): Promise<boolean>;
  /** Workers started, and chunks of parallel kernels they have run (diagnostics). */
  threadStats(): { workers: number; workerChunks: number };
  /**
   * A fresh instance of the same build, for when this one faulted: this one's workers are
   * terminated (its memory is freed with it) and the fresh one's start in the background.
   */
  restart(): WasmWeb;
}

/** A copy of a build's glue: the Backend functions plus the pool's (threads.rs). */
type Glue = ReturnType<typeof simdGlue> & { poolWorkers(): number; poolWorkerChunks(): number; setNumThreads(n: number): number };

const glues: Record<WasmVariant, () => Glue> = {
  simd: simdGlue as () => Glue,
  relaxed: relaxedGlue as () => Glue,
  threads: threadsGlue as () => Glue,
};

/**
 * Each build's .wasm beside the bundle, each URL written out in full so that bundlers (Vite,
 * webpack) find the file and emit it.
 */
const defaultUrls: Record<WasmVariant, () => URL> = {
  simd: () => new URL('./kiln_wasm_bg.wasm', import.meta.url),
  relaxed: () => new URL('./kiln_wasm_relaxed_bg.wasm', import.meta.url),
  threads: () => new URL('./kiln_wasm_threads_bg.wasm', import.meta.url),
};

interface BrowserGlobals {
  crossOriginIsolated?: boolean;
  SharedArrayBuffer?: unknown;
  Worker?: unknown;
  navigator?: { hardwareConcurrency?: number };
}

/** Why this page cannot run threads ('' when it can). */
function threadsUnavailable(): string {
  const g = globalThis as BrowserGlobals;
  if (!g.crossOriginIsolated || g.SharedArrayBuffer === undefined) {
    return 'the page is not cross-origin isolated (threads share memory, which browsers allow only when the page is served with Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp)';
  }
  if (g.Worker === undefined) return 'this context has no Web Workers';
  if (!relaxedSimdSupported()) return 'this browser has no relaxed SIMD, which the threaded build uses';
  return '';
}

/**
 * Threads the page can have: 1 unless cross-origin isolated with workers and relaxed SIMD, with a
 * warning naming `call` when a count above 1 was asked for (as onnxruntime-web warns for
 * `env.wasm.numThreads`); 'auto' is navigator.hardwareConcurrency.
 */
function availableThreads(requested: number | 'auto', call: string): number {
  const why = threadsUnavailable();
  if (why !== '') {
    if (requested !== 'auto' && requested > 1) console.warn(`kiln: ${call} runs on 1 thread: ${why}`);
    return 1;
  }
  const cores = Math.max(1, (globalThis as BrowserGlobals).navigator?.hardwareConcurrency ?? 1);
  return requested === 'auto' ? cores : Math.max(1, Math.floor(requested));
}

interface WebAssemblyCompile {
  compileStreaming(source: Promise<unknown>): Promise<unknown>;
  compile(bytes: ArrayBuffer): Promise<unknown>;
}

/** Fetches and compiles a .wasm; servers that do not say application/wasm get the non-streaming path. */
async function compile(url: URL): Promise<unknown> {
  const api = (globalThis as unknown as { WebAssembly: WebAssemblyCompile }).WebAssembly;
  const get = (globalThis as unknown as { fetch(u: URL): Promise<{ ok: boolean; status: number; arrayBuffer(): Promise<ArrayBuffer> }> }).fetch;
  const response = get(url);
  try {
    return await api.compileStreaming(response);
  } catch {
    const r = await get(url);
    if (!r.ok) throw new Error(`kiln: cannot fetch ${url.href} (HTTP ${r.status})`);
    return api.compile(await r.arrayBuffer());
  }
}

/**
 * Instantiates the best build for this page (see the module comment) and starts its workers.
 * `call`: the user's call, for the warning when threads were asked for and the page has none.
 */
export async function loadWasmWeb(options: WasmWebOptions = {}, call?: string): Promise<WasmWeb> {
  const requested = options.threads ?? 'auto';
  const threads = availableThreads(requested, call ?? `init({ threads: ${String(requested)} })`);
  const variant =
    options.variant !== undefined ? parseVariant(options.variant, 'init({ variant })') : threads > 1 ? 'threads' : relaxedSimdSupported() ? 'relaxed' : 'simd';
  const url = options.wasmDir === undefined ? defaultUrls[variant]() : new URL(`${VARIANT_FILES[variant]}_bg.wasm`, options.wasmDir);
  // Compiled here, not by the glue: every worker and every fresh instance after a fault
  // instantiates the same compiled module.
  const module = await compile(url);
  const glue = glues[variant]();
  const instance = await glue.default({ module_or_path: module });
  const loaded = wrap({ variant, module, threads, glue, memory: instance.memory });
  if (variant === 'threads' && threads > 1) await loaded.workersStarted;
  return loaded.web;
}

interface Instance {
  variant: WasmVariant;
  module: unknown;
  /** Threads wanted, the page's included. */
  threads: number;
  glue: Glue;
  memory: { buffer: ArrayBufferLike };
}

/** The WasmWeb of one instance; its workers (threaded build) start now. */
function wrap(instance: Instance): { web: WasmWeb; workersStarted: Promise<number> } {
  const { variant, module, threads, glue, memory } = instance;
  const workers: WorkerLike[] = [];
  const poolWorkers = (): number => glue.poolWorkers();
  const workersStarted = variant === 'threads' && threads > 1 ? startWorkers(threads - 1, module, memory, poolWorkers, workers) : Promise.resolve(0);
  const web: WasmWeb = {
    backend: guardTraps(glue as unknown as WasmExports),
    variant,
    memory,
    setNumThreads: (n) => glue.setNumThreads(Math.max(1, Math.floor(n))),
    async setThreads(requested, call) {
      const n = availableThreads(requested, call);
      if (variant !== 'threads') return n === 1;
      await workersStarted;
      if (n - 1 > workers.length) await startWorkers(n - 1 - workers.length, module, memory, poolWorkers, workers);
      glue.setNumThreads(n);
      instance.threads = n; // a fresh instance after a fault starts as many
      return true;
    },
    threadStats: () => ({ workers: glue.poolWorkers(), workerChunks: glue.poolWorkerChunks() }),
    restart() {
      for (const worker of workers) worker.terminate();
      const fresh = glues[variant]();
      const { memory: freshMemory } = fresh.initSync({ module });
      return wrap({ ...instance, glue: fresh, memory: freshMemory }).web;
    },
  };
  return { web, workersStarted };
}
