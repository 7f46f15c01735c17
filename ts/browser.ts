/**
 * Kiln for browsers: the API of index.ts on the WASM backend, minus what needs a file system
 * (io's files, saved models and checkpoints, the MNIST loaders, training callbacks that write files).
 * Bundled by scripts/build-web.mjs into dist-web/kiln.js (an ES module) with kiln_wasm_bg.wasm beside it.
 *
 *   import * as kiln from './kiln.js';
 *   await kiln.init();
 *   const y = kiln.tidy(() => kiln.tensor([[1, 2], [3, 4]]).relu());
 *
 * Weights load from bytes: `kiln.io.decodeSafetensors(new Uint8Array(await (await fetch(url)).arrayBuffer()))`.
 */

import type { Backend } from './backends/backend.js';
import { loadWasmWeb } from './backends/wasm-web.js';
import { registerBackend } from './engine.js';

let wasm: Backend | null = null;
let loading: Promise<void> | null = null;

registerBackend(
  'wasm',
  () => {
    if (wasm === null) throw new Error('kiln: the WASM module is not loaded yet: `await kiln.init()` before creating tensors');
    return wasm;
  },
  true,
);

/** Options of `init`. */
export interface InitOptions {
  /** Where kiln_wasm_bg.wasm is served (default: next to the bundle). */
  wasmUrl?: string | URL;
}

/** Fetches and instantiates the WASM kernels. Call (and await) once before using tensors; later calls return at once. */
export function init(options: InitOptions = {}): Promise<void> {
  return (loading ??= loadWasmWeb(options.wasmUrl).then(
    (b) => {
      wasm = b;
    },
    (e: unknown) => {
      loading = null;
      throw e;
    },
  ));
}

export * from './core-api.js';
export { fit, evaluate, predict } from './train/fit.js';
export * as io from './io/browser.js';
// image output (PNG grids), without files
export * as viz from './viz/browser.js';
