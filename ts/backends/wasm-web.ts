/**
 * The WASM backend in browsers: the wasm-bindgen `web` builds (ES modules whose default export
 * fetches and instantiates the .wasm), behind the same `Backend` contract and trap handling as the
 * Node loader (wasm.ts). No Node imports: this module is part of the browser bundle.
 *
 * Three builds (wasm-features.ts): the threaded one when the page is cross-origin isolated (only
 * then do browsers allow the SharedArrayBuffer its memory is), with one Web Worker per extra
 * thread (wasm-threads.ts); else relaxed SIMD if the engine has it; else plain SIMD128.
 */

import initSimd, * as simdModule from 'kiln-wasm-web';
import initRelaxed, * as relaxedModule from 'kiln-wasm-web-relaxed';
import initThreads, * as threadsModule from 'kiln-wasm-web-threads';
import type { Backend } from './backend.js';
import { guardTraps, type WasmExports } from './wasm-guard.js';
import { parseVariant, relaxedSimdSupported, VARIANT_FILES, type WasmVariant } from './wasm-features.js';
import { startWorkers } from './wasm-threads.js';

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
  /** Workers started, and chunks of parallel kernels they have run (diagnostics). */
  threadStats(): { workers: number; workerChunks: number };
}

/** A wasm-bindgen module's exports: the Backend functions plus the pool's (threads.rs). */
type Glue = Record<string, unknown> & { poolWorkers(): number; poolWorkerChunks(): number; setNumThreads(n: number): number };
type Init = typeof initSimd;

const builds: Record<WasmVariant, [Init, Glue]> = {
  simd: [initSimd, simdModule as unknown as Glue],
  relaxed: [initRelaxed, relaxedModule as unknown as Glue],
  threads: [initThreads, threadsModule as unknown as Glue],
};

interface BrowserGlobals {
  crossOriginIsolated?: boolean;
  SharedArrayBuffer?: unknown;
  Worker?: unknown;
  navigator?: { hardwareConcurrency?: number };
}

/** Threads the page can have: 1 unless cross-origin isolated with workers and relaxed SIMD. */
function availableThreads(requested: number | 'auto'): number {
  const g = globalThis as BrowserGlobals;
  if (!g.crossOriginIsolated || g.SharedArrayBuffer === undefined || g.Worker === undefined || !relaxedSimdSupported()) return 1;
  const cores = Math.max(1, g.navigator?.hardwareConcurrency ?? 1);
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

/** Instantiates the best build for this page (see the module comment) and starts its workers. */
export async function loadWasmWeb(options: WasmWebOptions = {}): Promise<WasmWeb> {
  const threads = availableThreads(options.threads ?? 'auto');
  const variant =
    options.variant !== undefined ? parseVariant(options.variant, 'init({ variant })') : threads > 1 ? 'threads' : relaxedSimdSupported() ? 'relaxed' : 'simd';
  const [init, glue] = builds[variant];
  const url = options.wasmDir === undefined ? undefined : new URL(`${VARIANT_FILES[variant]}_bg.wasm`, options.wasmDir);
  let instance;
  if (variant === 'threads') {
    // Compiled here, not by the glue, because every worker instantiates the same compiled module.
    // The URL is written out so bundlers emit the file (the glue's own default is not used).
    const module = await compile(url ?? new URL('./kiln_wasm_threads_bg.wasm', import.meta.url));
    instance = await init({ module_or_path: module });
    if (threads > 1) await startWorkers(threads - 1, module, instance.memory, () => glue.poolWorkers());
  } else {
    instance = await init(url === undefined ? undefined : { module_or_path: url });
  }
  const backend = guardTraps(glue as unknown as WasmExports);
  return {
    backend,
    variant,
    memory: instance.memory,
    setNumThreads: (n) => glue.setNumThreads(Math.max(1, Math.floor(n))),
    threadStats: () => ({ workers: glue.poolWorkers(), workerChunks: glue.poolWorkerChunks() }),
  };
}
