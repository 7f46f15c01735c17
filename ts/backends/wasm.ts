/**
 * The WASM backend in Node: kiln-core compiled to wasm32 behind the same `Backend` contract as
 * the native addon. It runs the browsers' build: the wasm-bindgen `web` glue that
 * scripts/build-wasm.mjs writes to bindings/wasm/pkg-web/ (an ES module, loaded with require()),
 * instantiated synchronously with the .wasm bytes the browser bundle ships in dist-web/, so the
 * package carries each .wasm once. The relaxed-SIMD build when the engine accepts it (Node 22+; on
 * Node 20 after turning on V8's flag for it, see below), else the plain SIMD128 build.
 * `KILN_WASM_VARIANT=simd|relaxed` forces one. (Threads are for browsers: wasm-web.ts.)
 *
 * A Rust panic cannot be caught inside WASM (wasm32 has no unwinding): it aborts the instance
 * with a `WebAssembly.RuntimeError`, and every tensor it held is gone. Each entry point here
 * turns that trap into an Error naming the op and the panic message, and every later call
 * fails fast with the same explanation instead of running on a broken instance.
 */

import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import type { Backend } from './backend.js';
import { guardTraps, type WasmExports } from './wasm-guard.js';
import { parseVariant, relaxedSimdSupported, VARIANT_FILES, type WasmVariant } from './wasm-features.js';

/** A file relative to the package root (same relative path from ts/backends/ and dist/backends/). */
const fromRoot = (path: string): string => fileURLToPath(new URL(`../../${path}`, import.meta.url));

/**
 * A variant's glue (wasm-bindgen `web` output) and its .wasm: the browser bundle's copy in
 * dist-web/ (what the package ships), else the build output beside the glue (a checkout before
 * `npm run build:web`). The two are the same bytes.
 */
export function wasmBuildFiles(variant: WasmVariant): { glue: string; wasm: string } {
  const stem = VARIANT_FILES[variant];
  const shipped = fromRoot(`dist-web/${stem}_bg.wasm`);
  return { glue: fromRoot(`bindings/wasm/pkg-web/${stem}.js`), wasm: existsSync(shipped) ? shipped : fromRoot(`bindings/wasm/pkg-web/${stem}_bg.wasm`) };
}

/** Instantiates one build (once per process: the glue holds its instance) and returns its exports. */
export function instantiateWasmBuild(variant: WasmVariant): WasmExports {
  const { glue, wasm } = wasmBuildFiles(variant);
  for (const file of [glue, wasm]) {
    if (!existsSync(file)) {
      throw new Error(
        `kiln: the WASM module is not built (${file} is missing). ` +
          'Run `node scripts/build-wasm.mjs` (it needs cargo; docs/packaging.md).',
      );
    }
  }
  const module = createRequire(import.meta.url)(glue) as WasmExports & { initSync(options: { module: Uint8Array }): unknown };
  module.initSync({ module: readFileSync(wasm) });
  return module;
}

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
    if (v === 'threads') throw new Error("kiln: KILN_WASM_VARIANT=threads: the threaded WASM build runs in browsers only (Node has the native backend's threads)");
    if (v === 'relaxed' && !enableRelaxedSimd()) throw new Error('kiln: KILN_WASM_VARIANT=relaxed, but this Node cannot compile relaxed SIMD');
    return v;
  }
  return existsSync(wasmBuildFiles('relaxed').glue) && enableRelaxedSimd() ? 'relaxed' : 'simd';
}

export function loadWasm(): Backend {
  return guardTraps(instantiateWasmBuild(wasmVariant()));
}
