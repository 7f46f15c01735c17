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
  /** The table's error for argument `index` of `entry` given a value of the wrong JS type ('' if none): see `argumentTypes`. */
  wrongType?(entry: string, index: number, value: unknown): string;
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

/** The kinds of the table that cross WASM as an f64 (bindings/wasm/src/entries.rs), and the JS type each must have. */
const SCALAR_TYPES: Record<string, 'number' | 'boolean'> = { Handle: 'number', MaybeHandle: 'number', Count: 'number', Int: 'number', Number: 'number', Seed: 'number', Flag: 'boolean' };

/** [kind, TypeScript type, kind name, group fields] per argument, as `boundaryManifest()` lists them. */
type ManifestArg = [string, string, string, unknown?];

/**
 * The JS type each argument of each export must have, where JS itself would otherwise convert the
 * value: a scalar of the table crosses as an f64, so JS makes 2 of "2", 1 of true and 0 of null
 * before Rust sees it, and WASM would accept what the native addon refuses (`sum(x, 0, 1)` for a
 * boolean keepDims) or word it differently ("got NaN" for "got a string"). Checking the `typeof`
 * here costs a compare per scalar on the success path; the words come from Rust on the failure
 * path only (`wrongType`), so they are the native addon's.
 */
function argumentTypes(exports: WasmExports): Map<string, Array<string | undefined>> {
  const types = new Map<string, Array<string | undefined>>();
  for (const entry of JSON.parse(exports.boundaryManifest()) as Array<{ name: string; args: ManifestArg[] }>) {
    const byArg = entry.args.map(([, , kind]) => SCALAR_TYPES[kind]);
    if (byArg.some((t) => t !== undefined)) types.set(entry.name, byArg);
  }
  for (const [name, positions] of Object.entries(STRING_ARGS)) {
    const byArg: Array<string | undefined> = [];
    for (const i of positions) byArg[i] = 'string';
    types.set(name, byArg);
  }
  return types;
}

/** The error for argument `i` of export `name` not being a `type`: the table's words (from Rust) where it has them. */
function wrongType(exports: WasmExports, name: string, i: number, type: string, args: unknown[]): Error {
  const fromTable = exports.wrongType?.(name, i, args[i]);
  return new Error(fromTable || `${name}: argument ${i + 1} must be a ${type}, got ${args[i] === null ? 'null' : typeof args[i]}`);
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
  const typesOf = argumentTypes(exports);
  for (const [exportName, fn] of Object.entries(exports)) {
    if (typeof fn !== 'function' || exportName === 'install_panic_hook' || exportName === 'wrongType') continue;
    const name = exportName === 'liveMemory' ? 'memory' : exportName;
    const f = fn as (...args: unknown[]) => unknown;
    const types = typesOf.get(name) ?? [];
    guarded[name] = (...args: unknown[]) => {
      if (aborted !== null) {
        if (name === 'dispose') return false;
        throw new Error(`${name}: ${aborted}`);
      }
      for (let i = 0; i < types.length; i++) {
        if (types[i] !== undefined && typeof args[i] !== types[i]) throw wrongType(exports, name, i, types[i]!, args);
      }
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
