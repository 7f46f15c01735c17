/**
 * Which backends the suite runs against. Every test file wraps its tests in `forEachBackend`, so
 * the same assertions run unchanged on each backend named here.
 *
 *   KILN_BACKENDS=native,wasm npx vitest run
 */
import { beforeAll, describe } from 'vitest';
import * as kiln from '../ts/index.js';
import type { BackendName } from '../ts/index.js';

export const BACKENDS: BackendName[] = (process.env.KILN_BACKENDS ?? 'native')
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s.length > 0) as BackendName[];

/** Runs `fn` (which declares tests) once per backend, inside `describe('[name]')`. */
export function forEachBackend(fn: (name: BackendName) => void): void {
  for (const name of BACKENDS) {
    describe(`[${name}]`, () => {
      beforeAll(async () => {
        await kiln.setBackend(name);
      });
      fn(name);
    });
  }
}
