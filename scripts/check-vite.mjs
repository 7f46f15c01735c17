// `npm run check:vite`: checks that the browser bundle works through a bundler. In a temporary
// directory it installs vite (from the npm registry) and this repository as the package `kiln-ml`,
// builds a one-file app (`import * as kiln from 'kiln-ml'`: package.json's "browser" export), then
// loads the built app in Chromium twice: cross-origin isolated (the threaded build, with the
// worker Vite emitted) and not (the single-threaded build), and checks a matmul in each.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, run, step } from './lib.mjs';
import { CHROMIUM, CHROMIUM_ARGS, ensureChromium } from './chromium.mjs';
import { serve } from './serve-web.mjs';

ensureChromium();
run(process.execPath, [join(ROOT, 'scripts', 'build-web.mjs')]);
const dir = mkdtempSync(join(tmpdir(), 'kiln-vite-'));
try {
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'kiln-vite-check', private: true, type: 'module' }));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><meta charset="utf-8"><title>kiln + vite</title><script type="module" src="/src/main.js"></script>\n');
  writeFileSync(
    join(dir, 'src', 'main.js'),
    `import * as kiln from 'kiln-ml';
try {
  await kiln.init();
  const y = kiln.tidy(() => kiln.matmul(kiln.tensor([[1, 2], [3, 4]]), kiln.tensor([[5, 6], [7, 8]])).dataSync());
  window.result = { values: Array.from(y), variant: kiln.wasmVariant(), threads: kiln.numThreads() };
} catch (e) {
  window.result = { error: String(e?.stack ?? e) };
}
`,
  );
  writeFileSync(join(dir, 'vite.config.js'), "export default { build: { target: 'es2022' }, worker: { format: 'es' } };\n");
  step(`installing vite@7 and kiln (${ROOT}) into ${dir}`);
  run('npm', ['install', '--no-audit', '--no-fund', 'vite@7', ROOT], { cwd: dir });
  step('vite build');
  run('npx', ['vite', 'build'], { cwd: dir });

  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  let failed = false;
  try {
    for (const [isolated, want] of [
      [true, 'threads'],
      [false, 'relaxed'],
    ]) {
      const { server, url } = await serve({ port: 0, root: join(dir, 'dist'), isolated });
      try {
        const page = await browser.newPage();
        await page.goto(`${url}index.html`);
        await page.waitForFunction(() => window.result !== undefined, null, { timeout: 60_000 });
        const result = await page.evaluate(() => window.result);
        const ok = result.values?.join(',') === '19,22,43,50' && result.variant === want;
        failed ||= !ok;
        console.log(`${ok ? 'ok  ' : 'FAIL'} vite build, page ${isolated ? 'cross-origin isolated' : 'not isolated'}: ${JSON.stringify(result)}`);
      } finally {
        await new Promise((r) => server.close(r));
      }
    }
  } finally {
    await browser.close();
  }
  process.exitCode = failed ? 1 : 0;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
