/**
 * Which backends the suite runs against. Every test file wraps its tests in `forEachBackend`, so
 * the same assertions run unchanged on each backend named here.
 *
 *   KILN_BACKENDS=native,wasm,gpu npx vitest run
 *
 * 'gpu' runs when the machine has a GPU adapter (lavapipe counts: `npm test` installs it); without
 * one its tests are skipped with the reason. A file whose subject a backend does not have by design
 * says so with `forEachBackend(fn, { except })`; long learning runs use `heavyIt` (below).
 */
import { afterEach, beforeAll, describe, it, type TestFunction } from 'vitest';
import * as kiln from '../ts/index.js';
import type { BackendName } from '../ts/index.js';
import { settleDeferredChecks } from './helpers.js';

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

export interface BackendOptions {
  /**
   * Backends this file does not run on, each with the reason (printed as a skipped test). For
   * features a backend does not have by design, never for a failure to be fixed.
   */
  except?: Partial<Record<BackendName, string>>;
}

/**
 * Collects garbage and lets the FinalizationRegistry free the tensors it held (node runs with
 * --expose-gc: vitest.config.ts), so a backend's tests start without the previous one's garbage.
 */
async function settleGarbage(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return;
  gc();
  // Finalization callbacks run as tasks after the collection.
  await new Promise((resolve) => setTimeout(resolve, 0));
}

/** Runs `fn` (which declares tests) once per backend, inside `describe('[name]')`. */
export function forEachBackend(fn: (name: BackendName) => void, options: BackendOptions = {}): void {
  for (const name of BACKENDS) {
    const excepted = options.except?.[name];
    if (excepted !== undefined) {
      describe(`[${name}]`, () => it.skip(`not on this backend: ${excepted}`, () => {}));
      continue;
    }
    if (name === 'gpu' && gpuUnavailable() !== '') {
      describe('[gpu]', () => it.skip(`skipped: no GPU adapter (${gpuUnavailable()})`, () => {}));
      continue;
    }
    describe(`[${name}]`, () => {
      beforeAll(async () => {
        await settleGarbage();
        await kiln.setBackend(name);
      });
      // The error checks that could only be made asynchronously (helpers.ts: expectThrows).
      afterEach(settleDeferredChecks);
      fn(name);
    });
  }
}

/** Why the quantization tests do not run on the GPU backend. */
export const QUANTIZED_ON_CPU_ONLY = 'quantized layers are a CPU (native and WASM) inference feature; kiln.quantize refuses a GPU model (tests/gpu/device.test.ts)';

/** KILN_GPU_FULL=1 also runs the heavy tests on a software GPU adapter (see heavyIt). */
const GPU_FULL = process.env.KILN_GPU_FULL === '1';

/**
 * `it` for a long run (thousands of training steps or iterations). On a software GPU adapter
 * (lavapipe, which emulates the GPU on the CPU: each kernel runs ~100x slower than the CPU
 * backend) it is skipped unless KILN_GPU_FULL=1, and then gets 10x the time. What it trains is
 * still checked on the GPU in npm test by the same layers' forward and gradient parity tests and
 * by the MNIST MLP learning test (tests/gpu/device.test.ts).
 */
export function heavyIt(backend: BackendName): (title: string, fn: TestFunction, timeout?: number) => void {
  if (backend !== 'gpu') return (title, fn, timeout) => it(title, fn, timeout);
  if (kiln.gpuInfo().software && !GPU_FULL) {
    return (title) => it.skip(`${title} (heavy: skipped on a software GPU adapter; KILN_GPU_FULL=1 runs it)`, () => {});
  }
  return (title, fn, timeout) => it(title, fn, (timeout ?? 60_000) * 10);
}
