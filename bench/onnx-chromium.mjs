// The Chromium rows of `npm run bench:onnx`: serves the repository cross-origin isolated
// (scripts/serve-web.mjs, the bench's model files mounted at /onnx-models/) and drives
// bench/web/onnx.html in Debian's Chromium (playwright-core), where Kiln's threaded WASM build
// and onnxruntime-web's threaded WASM backend run the same files with the same thread count (and
// Kiln's build capped at one thread, for its threads' gain in the browser).
import { spawnSync } from 'node:child_process';
import { basename, join } from 'node:path';
import { ROOT, step } from '../scripts/lib.mjs';
import { CHROMIUM, CHROMIUM_ARGS, ensureChromium } from '../scripts/chromium.mjs';
import { serve } from '../scripts/serve-web.mjs';

/**
 * cases: [{ name, batch, path, shape }] with every path in `modelDir`; resolves to
 * { kilnVariant, threads, isolated, rows: [{ name, batch, kiln, ort, kilnOneThread, agree }] } (milliseconds).
 */
export async function chromiumRows(cases, { threads, modelDir }) {
  ensureChromium();
  const built = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-web.mjs')], { stdio: 'inherit' });
  if (built.status !== 0) throw new Error('scripts/build-web.mjs failed: the Chromium rows need dist-web/');
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  const { server, url } = await serve({ port: 0, isolated: true, mounts: { '/onnx-models/': modelDir } });
  try {
    const page = await browser.newPage();
    page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
    page.on('response', (r) => r.status() >= 400 && !r.url().endsWith('/favicon.ico') && console.error(`page: ${r.status()} for ${r.url()}`));
    await page.goto(`${url}bench/web/onnx.html`);
    await page.waitForFunction(() => window.onnxBench !== undefined);
    step(`Chromium ${browser.version()}, cross-origin isolated page, ${threads} threads each`);
    const pageCases = cases.map((c) => ({ name: c.name, batch: c.batch, shape: c.shape, url: `/onnx-models/${basename(c.path)}` }));
    return await page.evaluate((args) => window.onnxBench.run(args), { cases: pageCases, threads });
  } finally {
    await browser.close();
    await new Promise((r) => server.close(r));
  }
}
