/**
 * The wasm-bindgen `web` builds (bindings/wasm/pkg-web/kiln_wasm*.js, built by scripts/build-wasm.mjs).
 * They are build outputs, absent from a fresh checkout, so the browser entry imports them through
 * these bare names. scripts/build-web.mjs turns each into a module whose `createGlue()` returns a
 * fresh copy of the glue (one copy holds at most one instance: a faulted instance is replaced by
 * a new copy's). Only the initializers and the module-level extras are typed here; the kernels are
 * reached through the `Backend` contract.
 */
interface KilnWasmInitOptions {
  /** The .wasm's URL or bytes, or a compiled WebAssembly.Module (workers receive the main thread's). */
  module_or_path?: unknown;
  /** The threaded build's shared WebAssembly.Memory (workers receive the main thread's). */
  memory?: unknown;
  thread_stack_size?: number;
}
interface KilnWasmInitSyncOptions {
  /** A compiled WebAssembly.Module (or the .wasm's bytes). */
  module: unknown;
  /** The threaded build's shared WebAssembly.Memory (a new one when omitted). */
  memory?: unknown;
}
/** What init resolves to: the instance's raw exports (`memory` among them). */
type KilnWasmInitOutput = { memory: { buffer: ArrayBufferLike } } & Record<string, unknown>;
/** One copy of a build's glue: its initializers and its exports (the Backend functions). */
type KilnWasmGlue = {
  /** Instantiates asynchronously (a URL is fetched; a compiled module is only instantiated). */
  default(options?: KilnWasmInitOptions): Promise<KilnWasmInitOutput>;
  /** Instantiates a compiled module synchronously. */
  initSync(options: KilnWasmInitSyncOptions): KilnWasmInitOutput;
} & Record<string, unknown>;

declare module 'kiln-wasm-web' {
  /** A fresh copy of the SIMD128 build's glue (kiln_wasm_bg.wasm). */
  export function createGlue(): KilnWasmGlue;
}
declare module 'kiln-wasm-web-relaxed' {
  /** As kiln-wasm-web, with relaxed-simd (kiln_wasm_relaxed_bg.wasm). */
  export function createGlue(): KilnWasmGlue;
}
declare module 'kiln-wasm-web-threads' {
  /** As kiln-wasm-web-relaxed, with atomics and shared memory (kiln_wasm_threads_bg.wasm). */
  export function createGlue(): KilnWasmGlue;
}
declare module 'kiln-wasm-web-gpu' {
  /** SIMD128 with kiln-gpu on WebGPU (kiln_wasm_gpu_bg.wasm), imported on demand by setBackend('gpu'). */
  export default function init(options?: KilnWasmInitOptions): Promise<KilnWasmInitOutput>;
}
