/**
 * Which backends the suite runs against. Every test file wraps its tests in `forEachBackend`, so
 * the same assertions run unchanged on each backend named here.
 *
 *   KILN_BACKENDS=native,wasm,gpu npx vitest run
 *
 * 'gpu' runs when the machine has a GPU adapter (lavapipe counts: `npm test` installs it); without
 * one its tests are skipped with the reason. Tests whose subject the GPU does not promise (see
 * GPU_EXCLUSIONS) are skipped there by name.
 */
import { beforeAll, describe, it } from 'vitest';
import * as kiln from '../ts/index.js';
import type { BackendName } from '../ts/index.js';

export const BACKENDS: BackendName[] = (process.env.KILN_BACKENDS ?? 'native')
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s.length > 0) as BackendName[];

/** Why the GPU backend cannot run here ('' when it can), checked once per test file. */
let gpuMissing: string | undefined;
function gpuUnavailable(): string {
  if (gpuMissing === undefined) {
    try {
      kiln.gpuInfo();
      gpuMissing = '';
    } catch (e) {
      gpuMissing = (e as Error).message;
    }
  }
  return gpuMissing;
}

/** Runs `fn` (which declares tests) once per backend, inside `describe('[name]')`. */
export function forEachBackend(fn: (name: BackendName) => void): void {
  for (const name of BACKENDS) {
    if (name === 'gpu' && gpuUnavailable() !== '') {
      describe('[gpu]', () => it.skip(`skipped: no GPU adapter (${gpuUnavailable()})`, () => {}));
      continue;
    }
    describe(`[${name}]`, () => {
      beforeAll(async () => {
        await kiln.setBackend(name);
      });
      fn(name);
    });
  }
}
