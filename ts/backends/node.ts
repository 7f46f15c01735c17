/**
 * Registers the Node backends with the engine: 'native' (the N-API addon, default) and 'wasm'
 * (the wasm-bindgen `nodejs` build). Imported for its effect by the Node entry (index.ts); the
 * browser entry does not import it, so node:fs and node:module stay out of browser bundles.
 */

import { registerBackend } from '../engine.js';
import { loadNative } from './native.js';
import { loadWasm } from './wasm.js';

registerBackend('native', loadNative, true);
registerBackend('wasm', loadWasm);
