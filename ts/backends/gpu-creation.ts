/**
 * What makes a backend "the GPU backend" on top of a module that has a GPU device (the Node addon,
 * or the browser's GPU WASM module): ops are the module's own (kiln-core dispatches each to the
 * device its inputs live on), and every creation function makes its tensor on the GPU.
 * No platform imports: part of the browser bundle too.
 */

import type { Backend, Handle } from './backend.js';

/** The functions that make a tensor from nothing (data, a fill, a range, random numbers). */
const CREATION = ['fromF32', 'fromI32', 'fromBool', 'full', 'arange', 'eye', 'randn', 'randu'] as const;

/** `base` with its creation functions moved onto the GPU (`toDevice(h, 'gpu')`). */
export function creatingOnGpu(base: Backend & Required<Pick<Backend, 'toDevice'>>): Backend {
  const onDevice = Object.create(base) as Record<string, unknown>;
  for (const name of CREATION) {
    const make = (base as unknown as Record<string, (...args: unknown[]) => Handle>)[name];
    onDevice[name] = (...args: unknown[]): Handle => {
      const h = make.apply(base, args);
      try {
        return base.toDevice(h, 'gpu');
      } finally {
        base.dispose(h);
      }
    };
  }
  return onDevice as unknown as Backend;
}
