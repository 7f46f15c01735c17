/**
 * Issue 13, class 3, in a real browser (Debian's chromium, the bundle dist-web/kiln.js): a fault
 * inside the WASM module (a Rust panic aborts a wasm32 instance) is recoverable without reloading
 * the page, as in Node (tests/robustness/wasm-fault.test.ts). The fault is an Error naming the
 * call; the faulted instance's tensors say they were lost; the next new tensor runs on a fresh
 * instance of the same build; disposing a lost tensor is harmless, so `tidy` frees the rest.
 * Each build is checked: plain SIMD128 and relaxed SIMD on a page without isolation, and the
 * threaded build (with its workers restarted) on a cross-origin isolated page.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pageOnTwoServers, skipBrowser, type TwoServers } from './chromium.js';

interface FaultReport {
  variant: string;
  fault: string;
  lost: string;
  mixed: string;
  disposedLost: string | null;
  fresh: number[];
  tidied: number[];
  tensorsAfterTidy: number;
  secondFault: string;
  afterSecond: number[];
  workers: number;
  parallel: number[];
  serial: number[];
}

/** Runs in the page: faults the instance twice and uses Kiln after each fault. */
async function faultInPage(): Promise<FaultReport> {
  const kiln = (window as any).kiln;
  const message = (f: () => unknown): string => {
    try {
      f();
    } catch (e) {
      return (e as Error).message;
    }
    return 'no error';
  };
  const panic = () => kiln.tensor([0]).backend.impl.debugPanic(false);
  const before = kiln.tensor([1, 2, 3]);
  const fault = message(panic);
  const lost = message(() => before.dataSync());
  const fresh = kiln.tensor([10, 20, 30]);
  const mixed = message(() => kiln.add(before, fresh));
  const disposedLost = (() => {
    try {
      before.dispose();
      return null;
    } catch (e) {
      return (e as Error).message;
    }
  })();
  const freshValues = Array.from(fresh.add(1).dataSync() as Float32Array);
  // A scope whose first tensor dies with its instance: tidy still frees the others.
  const tidied = kiln.tidy(() => {
    kiln.tensor([1, 2]);
    message(panic);
    const b = kiln.tensor([1, 2]);
    return b.mul(kiln.tensor([3, 4]));
  });
  const tidiedValues = Array.from(tidied.dataSync() as Float32Array);
  // Only the result is left of the scope (on the fresh instance it ran on).
  const tensorsAfterTidy = kiln.memory().numTensors;
  tidied.dispose();
  const secondFault = message(panic);
  const afterSecond = Array.from(kiln.matmul(kiln.ones([2, 3]), kiln.ones([3, 2])).dataSync() as Float32Array);
  // The threaded build's workers come back: a kernel large enough to split runs on them and
  // agrees with the page's thread alone.
  const a = kiln.randn([256, 256], { seed: 5 });
  const start = Date.now();
  while (kiln.wasmThreadStats().workers < 1 && kiln.wasmVariant() === 'threads' && Date.now() - start < 20_000) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const parallel = Array.from(a.matmul(a).sum().dataSync() as Float32Array);
  kiln.setNumThreads(1);
  const serial = Array.from(a.matmul(a).sum().dataSync() as Float32Array);
  return {
    variant: kiln.wasmVariant(),
    fault,
    lost,
    mixed,
    disposedLost,
    fresh: freshValues,
    tidied: tidiedValues,
    tensorsAfterTidy,
    secondFault,
    afterSecond,
    workers: kiln.wasmThreadStats().workers,
    parallel,
    serial,
  };
}

describe.skipIf(skipBrowser)('[wasm] a fault in the page', () => {
  let servers: TwoServers | undefined;

  beforeAll(async () => {
    servers = await pageOnTwoServers(`<!doctype html><meta charset="utf-8"><title>kiln</title>
<script type="module">
  import * as kiln from '/dist-web/kiln.js';
  const variant = new URLSearchParams(location.search).get('variant') ?? undefined;
  await kiln.init({ variant, threads: variant === 'threads' ? 2 : 'auto' });
  window.kiln = kiln;
</script>
`);
  }, 120_000);

  afterAll(async () => {
    await servers?.close();
  });

  for (const [variant, isolated] of [
    ['simd', false],
    ['relaxed', false],
    ['threads', true],
  ] as const) {
    it(`${variant}: the fault is an Error, lost tensors say so, new tensors run on a fresh instance`, async () => {
      const page = await servers!.browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e: Error) => errors.push(e.message));
      await page.goto(`${isolated ? servers!.isolatedUrl : servers!.plainUrl}work/page/?variant=${variant}`);
      await page.waitForFunction(() => (window as any).kiln !== undefined, null, { timeout: 60_000 });
      const r: FaultReport = await page.evaluate(faultInPage);
      await page.close();

      expect(r.variant).toBe(variant);
      expect(r.fault).toMatch(/^debugPanic: internal error in Kiln \(.*deliberate panic.*\); the WASM instance aborted/);
      expect(r.lost).toMatch(/its tensors are lost/);
      expect(r.mixed).toMatch(/add: argument 'a' was lost: the WASM instance aborted/);
      expect(r.disposedLost, 'disposing a lost tensor').toBeNull();
      expect(r.fresh, 'an op on the fresh instance').toEqual([11, 21, 31]);
      expect(r.tidied).toEqual([3, 8]);
      expect(r.tensorsAfterTidy, 'tidy freed the scope but its result').toBe(1);
      expect(r.secondFault, 'a second fault is recoverable too').toMatch(/the WASM instance aborted/);
      expect(r.afterSecond).toEqual([3, 3, 3, 3]);
      expect(Math.abs(r.parallel[0]! - r.serial[0]!)).toBeLessThanOrEqual(1e-4 * Math.abs(r.serial[0]!));
      if (variant === 'threads') expect(r.workers, 'the fresh instance has its worker again').toBe(1);
      expect(errors, 'no uncaught error in the page').toEqual([]);
    }, 120_000);
  }
});
