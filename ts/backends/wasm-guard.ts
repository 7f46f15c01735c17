/**
 * Trap handling shared by the Node (wasm.ts) and browser (wasm-web.ts) loaders of the WASM backend.
 * No platform imports: this module is part of browser bundles.
 */

import type { Backend } from './backend.js';

/** What the wasm-bindgen module exports (both the `nodejs` and the `web` builds). */
export interface WasmExports extends Omit<Backend, 'memory'> {
  /** The message of the panic that aborted the instance, '' if none. */
  lastPanic(): string;
  /** The contract's `memory()`, renamed: the module's linear memory owns the export name `memory`. */
  liveMemory: Backend['memory'];
}

/** The trap error type (tsconfig's lib has no WebAssembly typings, so it is looked up at run time). */
const RuntimeError = (globalThis as unknown as { WebAssembly: { RuntimeError: ErrorConstructor } }).WebAssembly.RuntimeError;

/**
 * The String parameters of the hand-written exports (argument positions). wasm-bindgen's glue
 * trusts its argument types, and a non-string passed where a Rust `String` is expected is written
 * into the module's heap with the wrong length, corrupting it (found by tests/robustness/fuzz.test.ts).
 * The entries of the shared table take such arguments as a `JsValue` and check them in Rust
 * (crates/kiln-boundary's kinds); only setSimdLevel and the GPU module's toDevice are left here.
 */
// toDevice: the GPU module's hand-written export (bindings/wasm/src/gpu.rs).
const STRING_ARGS: Record<string, number[]> = { setSimdLevel: [0], toDevice: [1] };

function checkStrings(name: string, args: unknown[]): void {
  const bad = (i: number) => new Error(`${name}: argument ${i + 1} must be a string, got ${args[i] === null ? 'null' : typeof args[i]}`);
  for (const i of STRING_ARGS[name] ?? []) if (typeof args[i] !== 'string') throw bad(i);
}

/**
 * Wraps every export so an abort surfaces as a clear Error and marks the instance faulted: later
 * calls fail fast with the explanation, `faulted()` tells the engine to load a fresh instance,
 * and `dispose` becomes a no-op (the tensor's memory went with the instance), so tidy scopes and
 * GC finalizers holding such tensors never throw.
 */
export function guardTraps(exports: WasmExports): Backend {
  let aborted: string | null = null;
  const guarded: Record<string, unknown> = { faulted: () => aborted };
  for (const [exportName, fn] of Object.entries(exports)) {
    if (typeof fn !== 'function' || exportName === 'install_panic_hook') continue;
    const name = exportName === 'liveMemory' ? 'memory' : exportName;
    const f = fn as (...args: unknown[]) => unknown;
    guarded[name] = (...args: unknown[]) => {
      if (aborted !== null) {
        if (name === 'dispose') return false;
        throw new Error(`${name}: ${aborted}`);
      }
      checkStrings(name, args);
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
          `(${panic || `WASM trap: ${e.message}`}); its tensors are lost. New tensors go to a fresh instance ` +
          `(in Node automatically, or after setBackend('wasm'); in a browser, reload the page); please report it`;
        throw new Error(
          `${name}: internal error in Kiln (${panic || `WASM trap: ${e.message}`}); the WASM instance aborted and its tensors are lost ` +
            `(new tensors go to a fresh instance); please report it`,
        );
      }
    };
  }
  return guarded as unknown as Backend;
}
