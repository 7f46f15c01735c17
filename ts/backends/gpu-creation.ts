/**
 * What makes a backend "the GPU backend" on top of a module that has a GPU device (the Node addon,
 * or the browser's GPU WASM module): ops are the module's own (kiln-core dispatches each to the
 * device its inputs live on), and every creation function makes its tensor on the GPU.
 * No platform imports: part of the browser bundle too.
 */

import type { Backend, Handle } from './backend.js';

/** The functions that make a tensor from nothing (data, a fill, a range, random numbers). */
const CREATION = ['fromF32', 'fromI32', 'fromBool', 'full', 'arange', 'eye', 'randn', 'randu'] as const;

/** Each GPU backend's module, whose own creation functions make tensors in host memory. */
const hosts = new WeakMap<Backend, Backend>();

/**
 * The backend whose creation functions make host tensors from the same generator as `impl`'s:
 * `impl` itself, or for a GPU backend the module underneath. For numbers the host needs (DDPM's
 * timesteps, which index host-side tables) without a device round trip.
 */
export function hostCreation(impl: Backend): Backend {
  return hosts.get(impl) ?? impl;
}

/** `base` with its creation functions moved onto the GPU (`toDevice(h, 'gpu')`). */
export function creatingOnGpu(base: Backend & Required<Pick<Backend, 'toDevice'>>): Backend {
  const onDevice = Object.create(base) as Record<string, unknown>;
  hosts.set(onDevice as unknown as Backend, base);
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
