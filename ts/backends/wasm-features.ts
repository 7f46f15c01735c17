/**
 * Which WASM build an engine can run (no platform imports: part of browser bundles too).
 * scripts/build-wasm.mjs builds three: SIMD128 (every engine with WASM SIMD), + relaxed-simd
 * (its fused multiply-add makes the GEMM kernel faster), and + threads (shared memory, for
 * cross-origin isolated pages).
 */

export type WasmVariant = 'simd' | 'relaxed' | 'threads';

/** Output file stem of each variant (kiln_wasm*_bg.wasm, kiln_wasm*.js). */
export const VARIANT_FILES: Record<WasmVariant, string> = {
  simd: 'kiln_wasm',
  relaxed: 'kiln_wasm_relaxed',
  threads: 'kiln_wasm_threads',
};

/** The smallest module that uses relaxed SIMD: `() -> v128 { f32x4.relaxed_madd(0, 0, 0) }`. */
const RELAXED_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // type section: () -> v128
  0x03, 0x02, 0x01, 0x00, // function section
  0x0a, 0x3d, 0x01, 0x3b, 0x00, // code section, one body of 59 bytes, no locals
  ...[0, 1, 2].flatMap(() => [0xfd, 0x0c, ...new Array<number>(16).fill(0)]), // v128.const 0, three times
  0xfd, 0x85, 0x02, // f32x4.relaxed_madd
  0x0b, // end
]);

interface WasmGlobal {
  validate(bytes: Uint8Array): boolean;
}
const wasmApi = (): WasmGlobal => (globalThis as unknown as { WebAssembly: WasmGlobal }).WebAssembly;

/** Whether this engine compiles relaxed-SIMD instructions. */
export function relaxedSimdSupported(): boolean {
  try {
    return wasmApi().validate(RELAXED_PROBE);
  } catch {
    return false;
  }
}

/** A variant name from a user or an environment variable, checked. */
export function parseVariant(name: string, where: string): WasmVariant {
  if (name === 'simd' || name === 'relaxed' || name === 'threads') return name;
  throw new Error(`kiln: ${where} must be 'simd', 'relaxed' or 'threads', got '${name}'`);
}
