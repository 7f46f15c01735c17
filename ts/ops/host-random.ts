/**
 * Random numbers drawn in host memory on every backend, for library code that needs the values
 * in JavaScript (a diffusion model's timesteps). Internal: not re-exported by the public API,
 * where `randu` is the user's call.
 */

import { backend } from '../engine.js';
import { hostCreation } from '../backends/gpu-creation.js';
import { checkShape } from './util.js';

/**
 * `n` uniform numbers in [0, 1) from the global generator (as `randu([n])`), drawn and read in
 * host memory on every backend: no GPU round trip, so it works where reads must be asynchronous.
 */
export function randuOnHost(n: number): Float32Array {
  const impl = hostCreation(backend().impl);
  const h = impl.randu(checkShape('randu', [n]), 0, 1, undefined);
  try {
    return impl.readF32(h);
  } finally {
    impl.dispose(h);
  }
}
