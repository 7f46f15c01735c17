/**
 * The WASM backend in Node: kiln-core compiled to wasm32 behind the same `Backend` contract as
 * the native addon. It loads the wasm-bindgen `nodejs` output that scripts/build-wasm.mjs writes
 * to bindings/wasm/pkg-node/: the relaxed-SIMD build when the engine accepts it (Node 22+; on
 * Node 20 after turning on V8's flag for it, see below), else the plain SIMD128 build.
 * `KILN_WASM_VARIANT=simd|relaxed` forces one; `KILN_WASM_VARIANT=threads` runs the threaded build
 * on worker_threads (wasm-node-threads.ts), as pages run it on Web Workers.
 *
 * A Rust panic cannot be caught inside WASM (wasm32 has no unwinding): it aborts the instance
 * with a `WebAssembly.RuntimeError`, and every tensor it held is gone. Each entry point here
 * turns that trap into an Error naming the op and the panic message, every later call on that
 * instance fails fast with the same explanation, and new tensors go to a fresh instance
 * (wasm-guard.ts, engine.ts).
 */

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import type { Backend } from './backend.js';
import { guardTraps, type WasmExports } from './wasm-guard.js';
import { loadThreadedWasm } from './wasm-node-threads.js';
import { parseVariant, relaxedSimdSupported, VARIANT_FILES, type WasmVariant } from './wasm-features.js';

/** Where scripts/build-wasm.mjs puts the modules (same relative path from ts/ and dist/). */
const modulePath = (variant: WasmVariant): string =>
  fileURLToPath(new URL(`../../bindings/wasm/pkg-node/${VARIANT_FILES[variant]}.js`, import.meta.url));

/** A file of the threaded build's web glue ('.js' or '_bg.wasm'). */
const threadsFile = (suffix: string): URL => new URL(`../../bindings/wasm/pkg-web/${VARIANT_FILES.threads}${suffix}`, import.meta.url);

/**
 * Relaxed SIMD is a finished WebAssembly standard, on by default from V8 11.4 (Node 22); Node 20's
 * V8 has it behind this flag. Turning a V8 flag on after start-up is allowed for flags that only
 * gate what the WASM compiler accepts, as this one does, and it must happen before compiling.
 */
function enableRelaxedSimd(): boolean {
  if (relaxedSimdSupported()) return true;
  try {
    setFlagsFromString('--experimental-wasm-relaxed-simd');
  } catch {
    return false;
  }
  return relaxedSimdSupported();
}

/** The variant this process uses. */
export function wasmVariant(): WasmVariant {
  const forced = process.env.KILN_WASM_VARIANT;
  if (forced) {
    const v = parseVariant(forced, 'KILN_WASM_VARIANT');
    if ((v === 'relaxed' || v === 'threads') && !enableRelaxedSimd()) throw new Error(`kiln: KILN_WASM_VARIANT=${v}, but this Node cannot compile relaxed SIMD`);
    return v;
  }
  return existsSync(modulePath('relaxed')) && enableRelaxedSimd() ? 'relaxed' : 'simd';
}

export function loadWasm(): Backend {
  const variant = wasmVariant();
  // The threaded build has wasm-bindgen's web glue only (scripts/build-wasm.mjs): pkg-web/.
  const path = variant === 'threads' ? fileURLToPath(threadsFile('.js')) : modulePath(variant);
  if (!existsSync(path)) {
    throw new Error(
      `kiln: the WASM module is not built (${path} is missing). ` +
        'Run `node scripts/build-wasm.mjs` (it needs cargo and Debian\'s rustc-web; see the README).',
    );
  }
  if (variant === 'threads') return guardTraps(loadThreadedWasm(threadsFile('.js'), threadsFile('_bg.wasm')));
  const require = createRequire(import.meta.url);
  // The glue instantiates the module when it is first required; dropping it from the cache makes
  // each load a fresh instance (after a fault, engine.ts loads again).
  delete require.cache[require.resolve(path)];
  const exports = require(path) as WasmExports;
  return guardTraps(exports);
}
