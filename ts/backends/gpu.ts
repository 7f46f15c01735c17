/**
 * The GPU backend in Node: the native addon with kiln-gpu behind it. Ops are the addon's own
 * (kiln-core dispatches each to the device its inputs live on); what differs is where new tensors
 * are made: every creation function here makes its tensor on the GPU. Results stay on the device
 * until read: `await t.data()` reads on a worker thread (`readAsync`), `dataSync()` blocks.
 *
 * The device opens when the backend is first selected, so a machine without a GPU driver only
 * hears about it from `setBackend('gpu')` (or `gpuInfo()`), with what to install.
 */

import type { Backend, Handle } from './backend.js';
import { loadNative } from './native.js';

/** The functions that make a tensor from nothing (data, a fill, a range, random numbers). */
const CREATION = ['fromF32', 'fromI32', 'fromBool', 'full', 'arange', 'eye', 'randn', 'randu'] as const;

export function loadGpu(): Backend {
  const addon = loadNative() as Backend & Required<Pick<Backend, 'gpuInfo' | 'toDevice'>>;
  addon.gpuInfo(); // opens the device now: no adapter -> the addon's error with the install hint
  const onDevice = Object.create(addon) as Record<string, unknown>;
  for (const name of CREATION) {
    const make = (addon as unknown as Record<string, (...args: unknown[]) => Handle>)[name];
    onDevice[name] = (...args: unknown[]): Handle => {
      const h = make.apply(addon, args);
      try {
        return addon.toDevice(h, 'gpu');
      } finally {
        addon.dispose(h);
      }
    };
  }
  return onDevice as unknown as Backend;
}
