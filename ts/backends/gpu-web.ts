/**
 * The GPU backend in browsers: kiln-gpu on WebGPU, in its own WASM module (kiln_wasm_gpu: kiln-core
 * + kiln-gpu, the same WGSL kernels as native), fetched only when a page asks for
 * `setBackend('gpu')`: the dynamic import below is a separate chunk of the bundle, and its .wasm
 * is fetched by that chunk. The module has its own tensor table, apart from the WASM backend's.
 *
 * Same semantics as the native GPU backend: tensors stay on the device, `await t.data()` reads
 * (WebGPU's mapAsync), buffers are pooled, an out-of-range index is reported at the next read.
 * What a page cannot do is wait: `dataSync()` of a GPU tensor throws, naming `await t.data()`.
 */

import type { Backend } from './backend.js';
import { creatingOnGpu } from './gpu-creation.js';
import { guardTraps, type WasmExports } from './wasm-guard.js';

/** The GPU module's extra exports (bindings/wasm/src/gpu.rs). */
type GpuGlue = WasmExports & { openGpu(): Promise<string> };

interface GpuAdapterInfo {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}
interface WebGpu {
  requestAdapter(options?: { powerPreference?: string }): Promise<{ info?: GpuAdapterInfo } | null>;
}

/**
 * The adapter as the browser describes it (vendor 'google', architecture 'swiftshader' for
 * Chromium's CPU implementation), or why there is none. wgpu's AdapterInfo on the web carries only
 * the description, so gpuInfo() adds these.
 */
async function browserAdapter(): Promise<GpuAdapterInfo> {
  const gpu = (globalThis as { navigator?: { gpu?: WebGpu } }).navigator?.gpu;
  if (gpu === undefined) throw new Error("setBackend('gpu'): this browser exposes no navigator.gpu (WebGPU is off or unsupported, or the page is not a secure context: https or localhost)");
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (adapter === null) throw new Error("setBackend('gpu'): navigator.gpu.requestAdapter() gave no adapter (WebGPU is blocked for this GPU or driver)");
  return adapter.info ?? {};
}

/**
 * Loads the GPU module and opens WebGPU's device. Rejects with the reason when there is none (no
 * `navigator.gpu`, or no adapter), so the caller can stay on WASM and say why.
 * `wasmDir`: where kiln_wasm_gpu_bg.wasm is served (default: next to the bundle).
 */
export async function loadGpuWeb(wasmDir?: string | URL): Promise<Backend> {
  const adapter = await browserAdapter();
  const { default: init, ...glue } = await import('kiln-wasm-web-gpu');
  await init(wasmDir === undefined ? undefined : { module_or_path: new URL('kiln_wasm_gpu_bg.wasm', wasmDir) });
  const exports = glue as unknown as GpuGlue;
  try {
    await exports.openGpu();
  } catch (e) {
    throw new Error(`setBackend('gpu'): ${(e as Error).message}`);
  }
  const backend = creatingOnGpu(guardTraps(exports) as Backend & Required<Pick<Backend, 'toDevice'>>) as Backend & Required<Pick<Backend, 'gpuInfo'>>;
  const describe = backend.gpuInfo.bind(backend);
  // SwiftShader says so in its architecture; Mesa's llvmpipe (lavapipe) only in the description,
  // which Chromium fills with --enable-webgpu-developer-features (docs/browser.md).
  const software = adapter.architecture === 'swiftshader' || adapter.isFallbackAdapter === true || /llvmpipe|lavapipe|swiftshader/i.test(adapter.description ?? '');
  backend.gpuInfo = () => {
    const info = JSON.parse(describe()) as Record<string, unknown>;
    const named = { ...info, adapter: info.adapter || adapter.description || `${adapter.vendor ?? ''} ${adapter.architecture ?? ''}`.trim() };
    return JSON.stringify({ ...named, vendor: adapter.vendor ?? '', architecture: adapter.architecture ?? '', software: software || info.software === true });
  };
  return backend;
}
