/**
 * The WASM backend in Node: kiln-core compiled to wasm32 behind the same `Backend` contract as
 * the native addon. It loads the wasm-bindgen `nodejs` output that scripts/build-wasm.mjs writes
 * to bindings/wasm/pkg-node/: the relaxed-SIMD build when the engine accepts it (Node 22+; on
 * Node 20 after turning on V8's flag for it, see below), else the plain SIMD128 build.
 * `setBackend('wasm', { threads: N })` with N > 1 runs the threaded build on worker_threads
 * (wasm-node-threads.ts), as pages run it on Web Workers. `KILN_WASM_VARIANT=simd|relaxed|threads`
 * forces a build (for testing one build across the whole suite).
 *
 * A Rust panic cannot be caught inside WASM (wasm32 has no unwinding): it aborts the instance
 * with a `WebAssembly.RuntimeError`, and every tensor it held is gone. Each entry point here
 * turns that trap into an Error naming the op and the panic message, every later call on that
 * instance fails fast with the same explanation, and new tensors go to a fresh instance
 * (wasm-guard.ts, engine.ts).
 */

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import type { BackendOptions } from '../engine.js';
import type { Backend } from './backend.js';
import { guardTraps, type WasmExports } from './wasm-guard.js';
import { loadThreadedWasm, type NodeThreadPool } from './wasm-node-threads.js';
import { parseVariant, relaxedSimdSupported, VARIANT_FILES, type WasmVariant } from './wasm-features.js';

/** Where scripts/build-wasm.mjs puts the modules (same relative path from ts/ and dist/). */
const modulePath = (variant: WasmVariant): string =>
  fileURLToPath(new URL(`../../bindings/wasm/pkg-node/${VARIANT_FILES[variant]}.js`, import.meta.url));

/**
 * The threaded build's web glue (pkg-web/; the npm package ships it) and its .wasm: beside the
 * glue in a checkout, in dist-web/ in the package (which ships that file once, for both Node and
 * bundlers).
 */
const THREADS_GLUE = new URL(`../../bindings/wasm/pkg-web/${VARIANT_FILES.threads}.js`, import.meta.url);
function threadsWasm(): URL {
  const beside = new URL(`../../bindings/wasm/pkg-web/${VARIANT_FILES.threads}_bg.wasm`, import.meta.url);
  return existsSync(beside) ? beside : new URL(`../../dist-web/${VARIANT_FILES.threads}_bg.wasm`, import.meta.url);
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

/** The build KILN_WASM_VARIANT forces, if any. */
function forcedVariant(): WasmVariant | undefined {
  const forced = process.env.KILN_WASM_VARIANT;
  if (!forced) return undefined;
  const v = parseVariant(forced, 'KILN_WASM_VARIANT');
  if ((v === 'relaxed' || v === 'threads') && !enableRelaxedSimd()) throw new Error(`kiln: KILN_WASM_VARIANT=${v}, but this Node cannot compile relaxed SIMD`);
  return v;
}

/** The thread count a request resolves to: 'auto' is every core. */
const resolveThreads = (threads: number | 'auto'): number => (threads === 'auto' ? availableParallelism() : threads);

/** The build a request runs on: the threaded one for more than one thread, else relaxed SIMD when the engine has it. */
function variantFor(threads: number): WasmVariant {
  const forced = forcedVariant();
  if (forced !== undefined && forced !== 'threads' && threads > 1) {
    throw new Error(`setBackend('wasm', { threads: ${threads} }): KILN_WASM_VARIANT=${forced} forces a single-threaded build; unset it to run threads`);
  }
  if (forced !== undefined) return forced;
  if (threads > 1) {
    if (!enableRelaxedSimd()) throw new Error(`setBackend('wasm', { threads: ${threads} }): this Node cannot compile relaxed SIMD, which the threaded WASM build uses`);
    return 'threads';
  }
  return existsSync(modulePath('relaxed')) && enableRelaxedSimd() ? 'relaxed' : 'simd';
}

/** The threaded instance in use, if any (its pool takes later thread counts). */
let threaded: { backend: Backend; pool: NodeThreadPool } | null = null;

function missing(path: string): Error {
  return new Error(
    `kiln: the WASM module is not built (${path} is missing). ` +
      "Run `node scripts/build-wasm.mjs` (it needs cargo and Debian's rustc-web; see the README).",
  );
}

/**
 * A WASM instance for `options` (engine.ts calls this on first use, and again after a fault):
 * without a thread count the single-threaded build (the threaded one when KILN_WASM_VARIANT says so).
 */
export function loadWasm(options: BackendOptions = {}): Backend {
  const forced = forcedVariant();
  const threads = resolveThreads(options.threads ?? (forced === 'threads' ? 'auto' : 1));
  const variant = variantFor(threads);
  if (variant === 'threads') {
    if (!existsSync(THREADS_GLUE)) throw missing(fileURLToPath(THREADS_GLUE));
    // A faulted instance's workers would sleep for ever on its memory.
    threaded?.pool.terminate();
    const pool = loadThreadedWasm(THREADS_GLUE, threadsWasm(), threads);
    threaded = { backend: guardTraps(pool.exports), pool };
    return threaded.backend;
  }
  const path = modulePath(variant);
  if (!existsSync(path)) throw missing(path);
  const require = createRequire(import.meta.url);
  // The glue instantiates the module when it is first required; dropping it from the cache makes
  // each load a fresh instance (after a fault, engine.ts loads again).
  delete require.cache[require.resolve(path)];
  const exports = require(path) as WasmExports;
  return guardTraps(exports);
}

/**
 * `setBackend('wasm', { threads })` on a loaded instance: the threaded build starts or caps
 * workers; a single-threaded build can only run one thread (false: the engine makes a threaded one).
 */
export function setWasmThreads(impl: Backend, threads: number | 'auto'): boolean {
  const n = resolveThreads(threads);
  if (threaded !== null && impl === threaded.backend) {
    threaded.pool.setThreads(n);
    return true;
  }
  return n === 1;
}

/** The single-threaded build this process loads (turning on Node 20's relaxed-SIMD flag if needed). */
export function wasmVariant(): WasmVariant {
  return variantFor(1);
}
