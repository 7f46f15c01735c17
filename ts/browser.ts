/**
 * Kiln for browsers: the API of index.ts on the WASM backend, minus what needs a file system
 * (io's files and checkpoints, the MNIST and Cora loaders, training callbacks that write files:
 * the list is in docs/browser.md, and tests/browser/exports.test.ts holds the two entries to it).
 * Saved models go to IndexedDB or a download and load from IndexedDB or a URL.
 * Bundled by scripts/build-web.mjs into dist-web/kiln.js (an ES module; package.json's "browser"
 * export) with the .wasm builds and the worker script beside it.
 *
 *   import * as kiln from 'kiln-ml';          // a bundler, or './dist-web/kiln.js' in a plain page
 *   await kiln.init();                     // threaded when the page is cross-origin isolated
 *   const y = kiln.tidy(() => kiln.tensor([[1, 2], [3, 4]]).relu());
 *
 *   await kiln.saveModel('indexeddb://mlp', { stateDict: model.stateDict(), config });
 *   const { stateDict } = await kiln.loadModel('/models/mlp/');   // a directory saved by Node
 *
 * `fit` trains here too (its progress lines go to the console; `onStep` feeds a page's own bar).
 */

import type { Backend } from './backends/backend.js';
import { loadGpuWeb } from './backends/gpu-web.js';
import { loadWasmWeb, type WasmWeb, type WasmWebOptions as InitOptions } from './backends/wasm-web.js';
import { checkBackendOptions, describeSetBackend, registerBackend, retireBackend, setBackend as selectBackend, type BackendName, type BackendOptions } from './engine.js';
import { registerDashboard } from './train/dashboard/hook.js';
import { PageDashboard } from './train/dashboard/in-page.js';

let wasm: WasmWeb | null = null;
let loading: Promise<void> | null = null;

registerBackend(
  'wasm',
  (): Backend => {
    if (wasm === null) throw new Error('kiln: the WASM module is not loaded yet: `await kiln.init()` before creating tensors');
    // Called again by the engine when the instance faulted: new tensors go to a fresh one.
    if (wasm.backend.faulted?.() != null) wasm = wasm.restart();
    return wasm.backend;
  },
  true,
);

let gpu: Backend | null = null;

registerBackend('gpu', (): Backend => {
  if (gpu === null) throw new Error("kiln: the GPU is not open: `await kiln.setBackend('gpu')` first (it loads the GPU module and opens WebGPU)");
  return gpu;
});

export type { WasmWebOptions as InitOptions } from './backends/wasm-web.js';

/** Where init() was told the .wasm files are (the GPU module is looked for there too). */
let wasmDir: string | URL | undefined;

/** What init() was last given (a threaded instance made by setBackend loads from the same place). */
let initOptions: InitOptions = {};

/**
 * Selects the backend for tensors created from now on: 'wasm' (the default) or 'gpu' (WebGPU).
 * 'gpu' loads the GPU module on first use and opens WebGPU's adapter; where the browser has none
 * it warns why and WASM stays in use. Resolves to the backend now in use:
 *
 *   const used = await kiln.setBackend('gpu');   // 'gpu', or 'wasm' without WebGPU
 *   console.log(used, used === 'gpu' ? kiln.gpuInfo().adapter : kiln.wasmVariant());
 *
 * `{ threads }` (WASM only: an integer >= 1 or 'auto') runs the kernels on that many threads, the
 * page's included, on Web Workers; it loads the WASM module if `init` has not. Threads need a
 * cross-origin isolated page: elsewhere a count above 1 warns why and runs on 1 thread. The count
 * may change later (workers start as needed); moving from the single-threaded build to the
 * threaded one makes a fresh instance, so it throws while WASM tensors are alive.
 *
 *   await kiln.setBackend('wasm', { threads: 4 });
 */
export async function setBackend(name: BackendName, options?: BackendOptions): Promise<BackendName> {
  const threads = checkBackendOptions(name, options);
  if (name !== 'gpu') {
    if (threads !== undefined) await setWasmThreads(threads, describeSetBackend(name, options));
    selectBackend(name);
    return name;
  }
  if (gpu === null) {
    try {
      gpu = await loadGpuWeb(wasmDir);
    } catch (e) {
      console.warn(`kiln: ${(e as Error).message}; staying on WASM`);
      selectBackend('wasm');
      return 'wasm';
    }
  }
  selectBackend('gpu');
  return 'gpu';
}

/** `setBackend('wasm', { threads })`: loads the module with that many threads, or gives the loaded one that many. */
async function setWasmThreads(threads: number | 'auto', call: string): Promise<void> {
  if (loading !== null) await loading.catch(() => undefined);
  if (wasm === null) {
    loading = loadWasmWeb({ ...initOptions, threads }, call).then(
      (w) => {
        wasm = w;
      },
      (e: unknown) => {
        loading = null;
        throw e;
      },
    );
    return loading;
  }
  if (wasm.backend.faulted?.() == null && (await wasm.setThreads(threads, call))) return;
  // The single-threaded build is loaded on a page that can run threads (init({ threads: 1 }) or
  // a forced variant): a threaded instance takes its place, if no tensor lives in it.
  retireBackend('wasm', call, `${String(threads)} threads need the threaded WASM build, not the single-threaded one in use`);
  wasm = await loadWasmWeb({ ...initOptions, threads, variant: undefined }, call);
}

/**
 * Fetches and instantiates the WASM kernels (and, on a cross-origin isolated page, starts the
 * worker threads). Call (and await) once before using tensors; later calls return at once.
 */
export function init(options: InitOptions = {}): Promise<void> {
  wasmDir = options.wasmDir;
  initOptions = options;
  return (loading ??= loadWasmWeb(options).then(
    (w) => {
      wasm = w;
    },
    (e: unknown) => {
      loading = null;
      throw e;
    },
  ));
}

function loaded(what: string): WasmWeb {
  if (wasm === null) throw new Error(`kiln.${what}: the WASM module is not loaded yet: \`await kiln.init()\` first`);
  return wasm;
}

/** The WASM build in use: 'threads', 'relaxed' (relaxed SIMD) or 'simd' (plain SIMD128). */
export function wasmVariant(): string {
  return loaded('wasmVariant').variant;
}

/** Bytes of WASM linear memory (grows when the allocator needs more, never shrinks). */
export function wasmMemoryBytes(): number {
  return loaded('wasmMemoryBytes').memory.buffer.byteLength;
}

/**
 * Diagnostics of the threaded build: worker threads started, and the chunks of parallel kernels
 * (GEMM row blocks, elementwise pieces) they have run so far. Both 0 in the single-threaded builds.
 */
export function wasmThreadStats(): { workers: number; workerChunks: number } {
  return loaded('wasmThreadStats').threadStats();
}

/** Caps the threads the kernels use (1 = the page's thread only); returns the number in use. */
export function setNumThreads(n: number): number {
  return loaded('setNumThreads').setNumThreads(n);
}

export * from './core-api.js';
export * as train from './train/browser.js';
export { fit, evaluate, predict } from './train/browser.js';
// The live training view in the page: fit's `dashboard: true`, or mounted by hand.
export { PageDashboard, type PageDashboardOptions } from './train/dashboard/in-page.js';
export { mountDashboard, type DashboardView } from './train/dashboard/view.js';
registerDashboard((options) => new PageDashboard(options));
export * as io from './io/browser.js';
export { saveModel, loadModel } from './io/browser.js';
export * as data from './data/browser.js';
// self-supervised pre-training (contrastive, masked autoencoder) and linear probes
export * as ssl from './ssl/index.js';
// image output (PNG grids), without files
export * as viz from './viz/browser.js';
// ONNX models from bytes and to bytes (no external data files without a file system)
export * as onnx from './onnx/browser.js';
