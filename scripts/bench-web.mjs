// `npm run bench:web`: Kiln's WASM backend in Chromium (Debian's, driven by playwright-core):
// examples/web/bench.html, served cross-origin isolated by scripts/serve-web.mjs, measures
// matmul 1024 and the MLP training step with 1 thread and with all threads (the threaded build),
// then the same page without isolation (the single-threaded build). Then the WebGPU rows
// (bench/web/webgpu.html): the same workloads on Kiln's GPU backend, tfjs-backend-webgpu and
// onnxruntime-web's WebGPU provider (SwiftShader here: correctness and dispatch overhead, not GPU
// speed). Prints the figures: the best of `--rounds N` (default 5) rounds, the least disturbed on a
// shared machine.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, step } from './lib.mjs';
import { CHROMIUM, CHROMIUM_ARGS, ensureChromium } from './chromium.mjs';
// What headless Chromium needs for WebGPU here (SwiftShader; tests/browser/chromium.ts says the same).
const WEBGPU_ARGS = ['--enable-unsafe-webgpu', '--enable-features=Vulkan'];
import { serve } from './serve-web.mjs';

/**
 * Bundles bench/web/tfjs-webgpu.mjs (tfjs-core, its gradients, tfjs-backend-webgpu from
 * bench/node_modules) into `dir`/tfjs-webgpu.js for the WebGPU page.
 */
async function bundleTfjs(dir) {
  const esbuild = createRequire(import.meta.url)('esbuild');
  await esbuild.build({
    entryPoints: [join(ROOT, 'bench', 'web', 'tfjs-webgpu.mjs')],
    bundle: true,
    format: 'esm',
    outfile: join(dir, 'tfjs-webgpu.js'),
    nodePaths: [join(ROOT, 'bench', 'node_modules')],
    logLevel: 'warning',
  });
}

const i = process.argv.indexOf('--rounds');
const rounds = i >= 0 ? Number(process.argv[i + 1]) : 5;
ensureChromium();
const bench = spawnSync('npm', ['install', '--no-audit', '--no-fund'], { cwd: join(ROOT, 'bench'), stdio: 'inherit', env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' } });
if (bench.status !== 0) process.exit(bench.status ?? 1);
const bundleDir = mkdtempSync(join(tmpdir(), 'kiln-bench-web-'));
await bundleTfjs(bundleDir);
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
    const { server, url } = await serve({ port: 0, isolated, mounts: { '/bench-build/': bundleDir } });
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
      if (!isolated) await webgpuRows(url);
      await page.close();
    } finally {
      await new Promise((r) => server.close(r));
    }
  }
} finally {
  await browser.close();
  rmSync(bundleDir, { recursive: true, force: true });
}

/** The WebGPU page: each peer checked against the reference, then timed; prints its rows. */
async function webgpuRows(url) {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && console.error(`page: ${m.text()}`));
  await page.goto(`${url}bench/web/webgpu.html`);
  await page.waitForFunction(() => window.webgpuBench !== undefined);
  const r = await page.evaluate((n) => window.webgpuBench.run({ rounds: n }), rounds);
  if (r === null) {
    console.log('  WebGPU: no adapter in this Chromium');
  } else {
    console.log(`  WebGPU, adapter ${r.adapter} (outputs checked against a float64 reference before timing; each call ends with its readback):`);
    for (const p of r.peers) {
      const mlp = p.mlp === null ? '     n/a (inference only)' : `${String(Math.round(p.mlp)).padStart(6)} samples/s`;
      console.log(`  ${p.label.padEnd(46)} matmul 1024 ${p.matmul.toFixed(1).padStart(6)} GFLOP/s   MLP step ${mlp}`);
    }
    if (r.software) console.log('  (a CPU implementation of WebGPU: these figures show correctness and dispatch overhead, not GPU speed)');
  }
  await page.close();
}
