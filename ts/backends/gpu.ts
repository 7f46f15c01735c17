/**
 * The GPU backend in Node: the native addon with kiln-gpu behind it (gpu-creation.ts makes new
 * tensors on the device). Results stay on the device until read: `await t.data()` reads on a
 * worker thread (`readAsync`), `dataSync()` blocks.
 *
 * The device opens when the backend is first selected, so a machine without a GPU driver only
 * hears about it from `setBackend('gpu')` (or `gpuInfo()`), with what to install.
 */

import type { Backend } from './backend.js';
import { creatingOnGpu } from './gpu-creation.js';
import { loadNative } from './native.js';

export function loadGpu(): Backend {
  const addon = loadNative() as Backend & Required<Pick<Backend, 'gpuInfo' | 'toDevice'>>;
  addon.gpuInfo(); // opens the device now: no adapter -> the addon's error with the install hint
  return creatingOnGpu(addon);
}
