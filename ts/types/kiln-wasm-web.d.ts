/**
 * The wasm-bindgen `web` build (bindings/wasm/pkg-web/kiln_wasm.js, built by scripts/build-wasm.mjs).
 * It is a build output, absent from a fresh checkout, so the browser entry imports it through this
 * bare name, which scripts/build-web.mjs maps to the file when it bundles (esbuild `alias`). Only the
 * initializer is typed here; the kernels are reached through the `Backend` contract.
 */
declare module 'kiln-wasm-web' {
  /** Fetches and instantiates the .wasm (default: kiln_wasm_bg.wasm next to the importing script). */
  export default function init(options?: { module_or_path?: string | URL | ArrayBuffer | Uint8Array }): Promise<unknown>;
}
