/**
 * The wasm-bindgen `web` builds (bindings/wasm/pkg-web/kiln_wasm*.js, built by scripts/build-wasm.mjs).
 * They are build outputs, absent from a fresh checkout, so the browser entry imports them through
 * these bare names, which scripts/build-web.mjs maps to the files when it bundles (esbuild `alias`).
 * Only the initializer and the module-level extras are typed here; the kernels are reached through
 * the `Backend` contract.
 */
interface KilnWasmInitOptions {
  /** The .wasm's URL or bytes, or a compiled WebAssembly.Module (workers receive the main thread's). */
  module_or_path?: unknown;
  /** The threaded build's shared WebAssembly.Memory (workers receive the main thread's). */
  memory?: unknown;
  thread_stack_size?: number;
}
/** What init resolves to: the instance's raw exports (`memory` among them). */
type KilnWasmInitOutput = { memory: { buffer: ArrayBufferLike } } & Record<string, unknown>;

declare module 'kiln-wasm-web' {
  /** Fetches and instantiates the .wasm (default: kiln_wasm_bg.wasm next to the importing script). */
  export default function init(options?: KilnWasmInitOptions): Promise<KilnWasmInitOutput>;
}
declare module 'kiln-wasm-web-relaxed' {
  /** As kiln-wasm-web, with relaxed-simd (kiln_wasm_relaxed_bg.wasm). */
  export default function init(options?: KilnWasmInitOptions): Promise<KilnWasmInitOutput>;
}
declare module 'kiln-wasm-web-threads' {
  /** As kiln-wasm-web-relaxed, with atomics and shared memory (kiln_wasm_threads_bg.wasm). */
  export default function init(options?: KilnWasmInitOptions): Promise<KilnWasmInitOutput>;
}
declare module 'kiln-wasm-web-gpu' {
  /** SIMD128 with kiln-gpu on WebGPU (kiln_wasm_gpu_bg.wasm), imported on demand by setBackend('gpu'). */
  export default function init(options?: KilnWasmInitOptions): Promise<KilnWasmInitOutput>;
}
