/**
 * Registers the Node backends with the engine: 'native' (the N-API addon, default), 'wasm'
 * (the wasm-bindgen `nodejs` build) and 'gpu' (the addon with kiln-gpu: tensors on the device).
 * Imported for its effect by the Node entry (index.ts); the browser entry does not import it, so node:fs and node:module stay out of browser bundles.
 */

import { registerBackend } from '../engine.js';
import { loadNative } from './native.js';
import { loadWasm } from './wasm.js';
import { loadGpu } from './gpu.js';

registerBackend('native', loadNative, true);
registerBackend('wasm', loadWasm);
registerBackend('gpu', loadGpu, false, 'native');
