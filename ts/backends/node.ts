/**
 * Registers the Node backends with the engine: 'native' (the N-API addon), 'wasm' (the
 * wasm-bindgen `nodejs` build, or the threaded build on worker_threads with `{ threads }`) and
 * 'gpu' (the addon with kiln-gpu: tensors on the device).
 * The default is native when its binary loads, else WASM with one warning that says why
 * (docs/packaging.md): `import` works on every platform Node runs on.
 * Imported for its effect by the Node entry (index.ts); the browser entry does not import it, so node:fs and node:module stay out of browser bundles.
 */

import { registerBackend, registerDefaultBackend } from '../engine.js';
import { describeFailure } from './native-binary.js';
import { loadNative, nativeLoadResult } from './native.js';
import { loadWasm, setWasmThreads } from './wasm.js';
import { loadGpu } from './gpu.js';

registerBackend('native', loadNative);
registerBackend('wasm', loadWasm, false, 'wasm', setWasmThreads);
registerBackend('gpu', loadGpu, false, 'native');

registerDefaultBackend(() => {
  const r = nativeLoadResult();
  if (r.ok) return 'native';
  process.emitWarning(`${describeFailure(r)} Using the WASM backend instead (same API, slower).`, {
    type: 'KilnWarning',
    code: 'KILN_NO_NATIVE_BINARY',
  });
  return 'wasm';
});
