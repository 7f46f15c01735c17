/**
 * The WASM backend in browsers: the wasm-bindgen `web` build (an ES module whose default export
 * fetches and instantiates the .wasm), behind the same `Backend` contract and trap handling as the
 * Node loader (wasm.ts). No Node imports: this module is part of the browser bundle.
 */

import init, * as wasmWeb from 'kiln-wasm-web';
import type { Backend } from './backend.js';
import { guardTraps, type WasmExports } from './wasm-guard.js';

/**
 * Instantiates the module. `wasmUrl` defaults to kiln_wasm_bg.wasm next to the script that
 * contains this code (the bundle: scripts/build-web.mjs copies the .wasm beside it).
 */
export async function loadWasmWeb(wasmUrl?: string | URL): Promise<Backend> {
  await init(wasmUrl === undefined ? undefined : { module_or_path: wasmUrl });
  return guardTraps(wasmWeb as unknown as WasmExports);
}
