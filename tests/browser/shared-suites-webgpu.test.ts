/**
 * The shared op, gradient and nn suites (the same files `KILN_BACKENDS=gpu` runs natively) in a
 * page, on Kiln's WebGPU backend in Debian's chromium: on Mesa's llvmpipe (through ANGLE, the
 * driver the native GPU suite uses) where lavapipe is installed, else SwiftShader
 * (tests/browser/chromium.ts WEBGPU_ADAPTER; KILN_WEBGPU_ADAPTER=swiftshader|lavapipe chooses).
 *
 * The suites are bundled with esbuild for the browser (scripts/web-bundle.mjs: Kiln's browser
 * entry, ts/browser.ts, in place of ts/index.ts; `vitest` resolved to page/vitest-shim.ts), and
 * run in the page by @vitest/runner (page/page-runner.ts) with KILN_BACKENDS=gpu, so every
 * `forEachBackend` block runs on WebGPU, with the native GPU suite's tolerances, skips and heavy
 * tests (tests/backends.ts: `heavyIt` skips the long learning runs on a software adapter unless
 * KILN_GPU_FULL=1, which reaches the page too). Each suite file here is one test that lists the
 * page's failures.
 *
 * A file that needs Node (it imports node: modules or a Node-only Kiln function: reference data on
 * disk, MNIST files, Python) cannot run in a page and is listed, with the reason, as skipped.
 * The files are split between `PAGES` pages running at the same time, each in its own Chromium.
 * Part of `npm test` (KILN_WEBGPU_SUITES=<substrings> runs only the matching files, =none none).
 * On lavapipe the page run took 5.4 min here, 4.6 of them in THE MEMORY TEST's 10,000 iterations
 * and the queue they leave (each op waits on two WebGPU error scopes, answered through Chromium's
 * GPU process); that soak is a heavy test on a software adapter, as natively (docs/browser.md).
 */
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWeb, launchChromium, ROOT, skipBrowser, WEBGPU_ADAPTER } from './chromium.js';
// @ts-expect-error: a plain .mjs script without type declarations
import { KILN_VERSION_DEFINE, kilnWebPlugins } from '../../scripts/web-bundle.mjs';

/** Pages running suites at the same time (KILN_WEBGPU_PAGES overrides). */
const PAGES = Number(process.env.KILN_WEBGPU_PAGES ?? 2);

/** Why a file cannot run in a page, or null. */
function needsNode(file: string): string | null {
  const src = readFileSync(join(ROOT, file), 'utf8');
  const found = [...new Set(src.match(/from 'node:[a-z_/]+'|\b(loadMnist|loadCora|readIdx|KILN_PYTHON|saveTensors|loadTensors)\b|backends\/(wasm|native|node|backend)\.js/g) ?? [])];
  return found.length > 0 ? `needs Node: ${found.join(', ')}` : null;
}

const SUITE_DIRS = ['tests', 'tests/autograd', 'tests/nn'];
const FILES = SUITE_DIRS.flatMap((dir) => readdirSync(join(ROOT, dir)).filter((f) => f.endsWith('.test.ts')).map((f) => `${dir}/${f}`)).sort();
/**
 * Every file by default (and with KILN_WEBGPU_SUITES=all); KILN_WEBGPU_SUITES=attention,nn/linear
 * only the files whose path contains one of these; KILN_WEBGPU_SUITES=none none.
 */
const REQUESTED = process.env.KILN_WEBGPU_SUITES ?? 'all';
const SELECTED = REQUESTED === 'all' ? undefined : REQUESTED.split(',').filter((s) => s.length > 0);
const selected = (f: string) => SELECTED === undefined || SELECTED.some((s) => f.includes(s));
const RUNNABLE = FILES.filter((f) => needsNode(f) === null && selected(f));

interface TestRow {
  file: string;
  name: string;
  state: string;
  error?: string;
  ms?: number;
}

/** Bundles the page runner with every runnable suite into `dir` (ES modules, shared chunks). */
async function bundle(dir: string): Promise<void> {
  const esbuild = createRequire(import.meta.url)('esbuild');
  const suites = RUNNABLE.map((f) => `${JSON.stringify(f)}: () => import(${JSON.stringify(join(ROOT, f))})`).join(',\n');
  const redirect = {
    name: 'kiln-suites-in-a-page',
    setup(build: any) {
      // The suites' Kiln is the browser entry (one module instance for all of them).
      build.onResolve({ filter: /\/ts\/index\.js$/ }, (args: any) => ({ path: join(args.resolveDir, args.path.replace(/index\.js$/, 'browser.ts')) }));
      build.onResolve({ filter: /^vitest$/ }, () => ({ path: join(ROOT, 'tests', 'browser', 'page', 'vitest-shim.ts') }));
      // The suites list, as dynamic imports (one chunk each).
      build.onResolve({ filter: /^kiln-suites$/ }, () => ({ path: 'kiln-suites', namespace: 'kiln-suites' }));
      build.onLoad({ filter: /.*/, namespace: 'kiln-suites' }, () => ({ contents: `globalThis.SUITES = {\n${suites}\n};`, loader: 'js', resolveDir: ROOT }));
    },
  };
  await esbuild.build({
    stdin: { contents: "import 'kiln-suites';\nexport * from './tests/browser/page/page-runner.ts';\n", resolveDir: ROOT, sourcefile: 'suites-entry.ts', loader: 'ts' },
    outdir: dir,
    entryNames: 'suites',
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    sourcemap: 'inline',
    plugins: [redirect, ...kilnWebPlugins(esbuild)],
    // The suites' switches, as under vitest: KILN_GPU_FULL=1 runs the heavy tests on a software adapter.
    define: { ...KILN_VERSION_DEFINE, 'process.env': JSON.stringify({ KILN_BACKENDS: 'gpu', KILN_GPU_FULL: process.env.KILN_GPU_FULL ?? '' }), 'process.platform': '"browser"' },
    logLevel: 'error',
  });
  // The .wasm builds and the GPU module's glue, beside the bundle (where ts/browser.ts looks).
  for (const f of readdirSync(join(ROOT, 'dist-web')).filter((f) => f.endsWith('.wasm') || f === 'kiln_wasm_gpu.js')) copyFileSync(join(ROOT, 'dist-web', f), join(dir, f));
  // The page: a module script that loads the bundle.
  const html = '<!doctype html><meta charset="utf-8"><title>Kiln shared suites on WebGPU</title><script type="module">import * as s from "./suites.js"; globalThis.kilnSuitesReady = true;</script>';
  writeFileSync(join(dir, 'index.html'), html);
}

describe.skipIf(skipBrowser || REQUESTED === 'none')('the shared op, gradient and nn suites on WebGPU in chromium', () => {
  let browsers: any[] = [];
  let server: any;
  let dir = '';
  const results = new Map<string, TestRow[]>();
  const failures: string[] = [];

  beforeAll(async () => {
    buildWeb();
    dir = mkdtempSync(join(tmpdir(), 'kiln-webgpu-suites-'));
    await bundle(dir);
    // @ts-expect-error: a plain .mjs script without type declarations
    const { serve } = await import('../../scripts/serve-web.mjs');
    let url = '';
    ({ server, url } = await serve({ port: 0, isolated: false, mounts: { '/suites/': dir } }));
    // Round-robin over the pages, so long files spread. One browser per page: the pages of one
    // Chromium share its GPU process, which runs their WebGPU work one command buffer at a time.
    const shards = Array.from({ length: PAGES }, (_, p) => RUNNABLE.filter((_, i) => i % PAGES === p));
    // --expose-gc: the suites collect garbage between backends (tests/backends.ts) as under
    // vitest (vitest.config.ts), so a test that counts tensors does not see earlier tests'
    // garbage being finalized while it runs.
    browsers = await Promise.all(shards.map(() => launchChromium(['--js-flags=--expose-gc'], { webgpu: WEBGPU_ADAPTER })));
    const t0 = Date.now();
    await Promise.all(
      shards.map(async (files, p) => {
        const page = await browsers[p].newPage();
        page.on('pageerror', (e: Error) => failures.push(`page ${p}: ${e.message}`));
        page.on('console', (m: any) => m.type() === 'error' && process.env.KILN_WEBGPU_VERBOSE && console.error(`page ${p}: ${m.text()}`));
        await page.exposeFunction('kilnProgress', (line: string) => console.log(`[webgpu suites, page ${p}] ${line}`));
        await page.goto(`${url}suites/index.html`);
        await page.waitForFunction(() => (globalThis as any).kilnSuitesReady === true, null, { timeout: 120_000 });
        const rows: TestRow[] = await page.evaluate((f: string[]) => (globalThis as any).kilnSuites.runSuites(f, (globalThis as any).kilnProgress), files);
        for (const r of rows) results.set(r.file, [...(results.get(r.file) ?? []), r]);
        await page.close();
      }),
    );
    const all = [...results.values()].flat();
    console.log(`[webgpu suites] ${RUNNABLE.length} files on ${PAGES} pages in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${all.filter((r) => r.state === 'pass').length} passed, ${all.filter((r) => r.state === 'fail').length} failed, ${all.filter((r) => r.state === 'skip').length} skipped`);
  }, 3_600_000);

  afterAll(async () => {
    await Promise.all(browsers.map((b) => b.close()));
    server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the page ran without uncaught errors', () => {
    expect(failures).toEqual([]);
  });

  for (const file of FILES) {
    const why = needsNode(file) ?? (selected(file) ? null : 'not selected by KILN_WEBGPU_SUITES');
    if (why !== null) {
      it.skip(`${file} (${why})`, () => {});
      continue;
    }
    it(file, () => {
      const rows = results.get(file) ?? [];
      expect(rows.length, `${file} ran no test in the page`).toBeGreaterThan(0);
      const failed = rows.filter((r) => r.state === 'fail' || r.state === 'none');
      expect(failed.map((r) => `${r.name}: ${r.error ?? r.state}`).join('\n\n'), `${failed.length} of ${rows.length} tests of ${file} failed on WebGPU`).toBe('');
    });
  }
});
