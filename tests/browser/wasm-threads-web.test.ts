/**
 * `await kiln.setBackend('wasm', { threads })` in Chromium (the bundle dist-web/kiln.js, no
 * `init` call): on a cross-origin isolated page the threaded build runs on Web Workers with the
 * single-threaded build's results (matmul, a convolution and the first loss of CNN training bit
 * for bit, the trained parameters and later losses within float32 rounding), the
 * thread count changes on the live backend, and the switch from the single-threaded build refuses
 * while tensors live; on a page without isolation a count above 1 warns why and runs on 1 thread
 * (as onnxruntime-web does for env.wasm.numThreads); bad options reject naming setBackend.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pageOnTwoServers, skipBrowser, type TwoServers } from './chromium.js';

/** The page: Kiln on window.kiln (not initialized), and the workload of tests/fixtures/threads-workload.mjs. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>kiln threads</title>
<script type="module">
  import * as kiln from '/dist-web/kiln.js';
  import { workload, same, worst } from '/tests/fixtures/threads-workload.mjs';
  window.kiln = kiln;
  window.workload = () => {
    const r = workload(kiln);
    // Bit for bit: the forward values and the first loss (before any update); the later losses
    // follow the trained parameters, within float32 rounding (see the test below).
    return { exact: [...r.forward, r.losses[0]], params: r.params, losses: r.losses, leaked: r.leaked };
  };
  window.same = same;
  window.worst = worst;
  window.ready = true;
</script>
`;

describe.skipIf(skipBrowser)("[wasm] setBackend('wasm', { threads }) in Chromium", () => {
  let servers: TwoServers | undefined;

  beforeAll(async () => {
    servers = await pageOnTwoServers(PAGE);
  }, 120_000);

  afterAll(async () => {
    await servers?.close();
  });

  /** A fresh page with Kiln imported (not initialized); fails the test on an uncaught page error. */
  async function open(base: string): Promise<{ page: any; errors: string[]; warnings: string[] }> {
    const page = await servers!.browser.newPage();
    const errors: string[] = [];
    const warnings: string[] = [];
    page.on('pageerror', (e: Error) => errors.push(e.message));
    page.on('console', (m: any) => m.type() === 'warning' && warnings.push(m.text()));
    await page.goto(`${base}work/page/`);
    await page.waitForFunction(() => (window as any).ready === true, null, { timeout: 60_000 });
    return { page, errors, warnings };
  }

  it('isolated page: the threaded build on Web Workers with the single-threaded results; the count changes live', async () => {
    const { page, errors } = await open(servers!.isolatedUrl);
    const r = await page.evaluate(async () => {
      const { kiln, workload, same, worst } = window as any;
      const chunks = () => kiln.wasmThreadStats().workerChunks;
      // The single-threaded build first (the page's thread alone), then the threaded one in its place.
      await kiln.init({ threads: 1 });
      const single = { ...workload(), variant: kiln.wasmVariant(), threads: kiln.numThreads() };
      const keep = kiln.ones([2, 2]);
      let refused = '';
      await kiln.setBackend('wasm', { threads: 2 }).catch((e: Error) => (refused = e.message));
      keep.dispose();
      await kiln.setBackend('wasm', { threads: 2 });
      const c0 = chunks();
      const two = { ...workload(), variant: kiln.wasmVariant(), threads: kiln.numThreads(), workers: kiln.wasmThreadStats().workers };
      const twoChunks = chunks() - c0;
      // More threads on the live instance: a worker joins; a tensor made before keeps its values.
      const t = kiln.randn([256, 256], { seed: 9 });
      const product = () => [...kiln.tidy(() => t.matmul(t).dataSync())];
      const before = product();
      await kiln.setBackend('wasm', { threads: 3 });
      const three = { threads: kiln.numThreads(), workers: kiln.wasmThreadStats().workers, same: same(product(), before) };
      await kiln.setBackend('wasm', { threads: 1 });
      const c1 = chunks();
      const one = { ...workload(), threads: kiln.numThreads() };
      const oneChunks = chunks() - c1;
      t.dispose();
      const bad = await kiln.setBackend('wasm', { threads: 0 }).then(() => 'no error', (e: Error) => e.message);
      return {
        isolated: (window as any).crossOriginIsolated,
        single: { variant: single.variant, threads: single.threads, leaked: single.leaked },
        refused,
        two: { variant: two.variant, threads: two.threads, workers: two.workers, leaked: two.leaked, chunks: twoChunks, same: same(two.exact, single.exact), paramsGap: worst(two.params, single.params), lossesGap: worst(two.losses, single.losses), losses: two.losses },
        three,
        one: { threads: one.threads, chunks: oneChunks, same: same(one.exact, single.exact) && same(one.params, single.params), leaked: one.leaked },
        bad,
        tensors: kiln.memory().numTensors,
      };
    });
    console.log(`threads in Chromium: ${JSON.stringify({ ...r, two: { ...r.two, losses: undefined } })}`);
    expect(r.isolated).toBe(true);
    expect(r.single).toEqual({ variant: 'relaxed', threads: 1, leaked: 0 });
    expect(r.refused).toMatch(/^setBackend\('wasm', \{ threads: 2 \}\): 2 threads need the threaded WASM build.*holds 1 live tensor.*dispose them first/);
    expect(r.two).toMatchObject({ variant: 'threads', threads: 2, workers: 1, leaked: 0, same: true });
    expect(r.two.chunks, 'the worker ran chunks of the kernels').toBeGreaterThan(0);
    // Forward values and the first loss bit for bit; the trained parameters, and the losses after
    // an update, within float32 rounding (conv2d's weight gradient sums one accumulator per
    // worker: tests/wasm-threads-node.test.ts).
    expect(r.two.paramsGap).toBeLessThan(1e-6);
    expect(r.two.lossesGap).toBeLessThan(1e-5);
    expect(r.two.losses.every((l: number) => Number.isFinite(l) && l > 0)).toBe(true);
    expect(r.three).toEqual({ threads: 3, workers: 2, same: true });
    expect(r.one).toEqual({ threads: 1, chunks: 0, same: true, leaked: 0 });
    expect(r.bad).toMatch(/^setBackend\('wasm', \{ threads: 0 \}\): threads must be an integer >= 1 or 'auto', got 0 \(number\)/);
    expect(r.tensors).toBe(0);
    expect(errors).toEqual([]);
    await page.close();
  }, 240_000);

  it('isolated page: setBackend with threads loads the module by itself (no init)', async () => {
    const { page, errors } = await open(servers!.isolatedUrl);
    const r = await page.evaluate(async () => {
      const { kiln } = window as any;
      const used = await kiln.setBackend('wasm', { threads: 2 });
      const y = kiln.matmul(kiln.tensor([[1, 2], [3, 4]]), kiln.tensor([[5, 6], [7, 8]]));
      return { used, variant: kiln.wasmVariant(), threads: kiln.numThreads(), workers: kiln.wasmThreadStats().workers, y: [...y.dataSync()] };
    });
    expect(r).toEqual({ used: 'wasm', variant: 'threads', threads: 2, workers: 1, y: [19, 22, 43, 50] });
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);

  it('page without isolation: a thread count above 1 warns why and runs on 1 thread', async () => {
    const { page, errors, warnings } = await open(servers!.plainUrl);
    const r = await page.evaluate(async () => {
      const { kiln, workload } = window as any;
      await kiln.setBackend('wasm', { threads: 4 });
      const w = workload();
      return { isolated: (window as any).crossOriginIsolated, variant: kiln.wasmVariant(), threads: kiln.numThreads(), leaked: w.leaked };
    });
    expect(r).toEqual({ isolated: false, variant: 'relaxed', threads: 1, leaked: 0 });
    expect(warnings.filter((w) => w.includes('threads'))).toEqual([
      expect.stringMatching(/^kiln: setBackend\('wasm', \{ threads: 4 \}\) runs on 1 thread: the page is not cross-origin isolated .*Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp/),
    ]);
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);
});
