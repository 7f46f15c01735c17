// `npm run bench:web`: Kiln's WASM backend in Chromium (Debian's, driven by playwright-core):
// examples/web/bench.html, served cross-origin isolated by scripts/serve-web.mjs, measures
// matmul 1024 and the MLP training step with 1 thread and with all threads (the threaded build),
// then the same page without isolation (the single-threaded build), and there the WebGPU backend
// (SwiftShader here: correctness and dispatch overhead, not GPU speed). Prints the figures: the best
// of `--rounds N` (default 5) alternating rounds, the least disturbed on a shared machine.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, step } from './lib.mjs';
import { CHROMIUM, CHROMIUM_ARGS, ensureChromium } from './chromium.mjs';
// What headless Chromium needs for WebGPU here (SwiftShader; tests/browser/chromium.ts says the same).
const WEBGPU_ARGS = ['--enable-unsafe-webgpu', '--enable-features=Vulkan'];
import { serve } from './serve-web.mjs';

const i = process.argv.indexOf('--rounds');
const rounds = i >= 0 ? Number(process.argv[i + 1]) : 5;
ensureChromium();
const built = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-web.mjs')], { stdio: 'inherit' });
if (built.status !== 0) process.exit(built.status ?? 1);

const { chromium } = await import('playwright-core');
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [...CHROMIUM_ARGS, ...WEBGPU_ARGS],
});
try {
  for (const isolated of [true, false]) {
    const { server, url } = await serve({ port: 0, isolated });
    try {
      const page = await browser.newPage();
      page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
      await page.goto(`${url}examples/web/bench.html`);
      await page.waitForFunction(() => window.kilnBench !== undefined);
      step(`Chromium ${browser.version()}, page ${isolated ? 'cross-origin isolated' : 'not isolated'}, best of ${rounds} rounds`);
      const r = await page.evaluate((n) => window.kilnBench.run({ rounds: n }), rounds);
      console.log(`  Kiln ${r.variant} build (${r.simd}), threads available: ${r.threads}`);
      for (const row of r.rows) {
        console.log(`  ${String(row.threads).padStart(2)} thread(s): matmul 1024 ${row.matmul.toFixed(1).padStart(6)} GFLOP/s   MLP step ${String(Math.round(row.mlp)).padStart(6)} samples/s`);
      }
      if (!isolated) {
        // The GPU module is single-threaded: isolation changes nothing for it, so it runs once.
        const g = await page.evaluate((n) => window.kilnBench.runGpu({ rounds: n }), rounds);
        if (g === null) console.log('  WebGPU: no adapter in this Chromium');
        else {
          console.log(`  Kiln WebGPU (${g.adapter}): matmul 1024 ${g.matmul.toFixed(1).padStart(6)} GFLOP/s   MLP step ${String(Math.round(g.mlp)).padStart(6)} samples/s`);
          if (g.software) console.log('  (a CPU implementation of WebGPU: these figures show correctness and dispatch overhead, not GPU speed)');
        }
      }
      await page.close();
    } finally {
      await new Promise((r) => server.close(r));
    }
  }
} finally {
  await browser.close();
}
