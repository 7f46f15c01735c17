/**
 * The WASM backend: kiln-core compiled to wasm32 (SIMD128, single-threaded) behind the same
 * `Backend` contract as the native addon. In Node it loads the wasm-bindgen `nodejs` output
 * that scripts/build-wasm.mjs writes to bindings/wasm/pkg-node/.
 *
 * A Rust panic cannot be caught inside WASM (wasm32 has no unwinding): it aborts the instance
 * with a `WebAssembly.RuntimeError`, and every tensor it held is gone. Each entry point here
 * turns that trap into an Error naming the op and the panic message, and every later call
 * fails fast with the same explanation instead of running on a broken instance.
 */

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Backend } from './backend.js';
import { guardTraps, type WasmExports } from './wasm-guard.js';

/** Where scripts/build-wasm.mjs puts the module (same relative path from ts/ and dist/). */
const MODULE_PATH = fileURLToPath(new URL('../../bindings/wasm/pkg-node/kiln_wasm.js', import.meta.url));

export function loadWasm(): Backend {
  if (!existsSync(MODULE_PATH)) {
    throw new Error(
      `kiln: the WASM module is not built (${MODULE_PATH} is missing). ` +
        'Run `node scripts/build-wasm.mjs` (it needs cargo and Debian\'s rustc-web; see the README).',
    );
  }
  const require = createRequire(import.meta.url);
  const exports = require(MODULE_PATH) as WasmExports;
  return guardTraps(exports);
}
