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

/** Where scripts/build-wasm.mjs puts the module (same relative path from ts/ and dist/). */
const MODULE_PATH = fileURLToPath(new URL('../../bindings/wasm/pkg-node/kiln_wasm.js', import.meta.url));

interface WasmExports extends Omit<Backend, 'memory'> {
  /** The message of the panic that aborted the instance, '' if none. */
  lastPanic(): string;
  /** The contract's `memory()`, renamed: the module's linear memory owns the export name `memory`. */
  liveMemory: Backend['memory'];
}

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

/** The trap error type (tsconfig's lib has no WebAssembly typings, so it is looked up at run time). */
const RuntimeError = (globalThis as unknown as { WebAssembly: { RuntimeError: ErrorConstructor } }).WebAssembly.RuntimeError;

/** Wraps every export so an abort surfaces as a clear Error and poisons the backend. */
function guardTraps(exports: WasmExports): Backend {
  let aborted: string | null = null;
  const guarded: Record<string, unknown> = {};
  for (const [exportName, fn] of Object.entries(exports)) {
    if (typeof fn !== 'function' || exportName === 'install_panic_hook') continue;
    const name = exportName === 'liveMemory' ? 'memory' : exportName;
    const f = fn as (...args: unknown[]) => unknown;
    guarded[name] = (...args: unknown[]) => {
      if (aborted !== null) throw new Error(`${name}: ${aborted}`);
      try {
        return f(...args);
      } catch (e) {
        if (!(e instanceof RuntimeError)) throw e;
        // No panic message: a trap without a panic, e.g. an allocation past WASM's 4 GiB address space.
        let panic = '';
        try {
          panic = exports.lastPanic();
        } catch {
          // the instance may be too broken to answer; the trap message below still says what happened
        }
        aborted =
          `the WASM instance aborted after an internal error in Kiln during ${name} ` +
          `(${panic || `WASM trap: ${e.message}`}); its tensors are lost: reload the module (restart the process); please report it`;
        throw new Error(`${name}: internal error in Kiln (${panic || `WASM trap: ${e.message}`}); the WASM instance aborted, please report it`);
      }
    };
  }
  return guarded as unknown as Backend;
}
