// Bundles Kiln for browsers: ts/browser.ts (the API on the WASM backend) into dist-web/kiln.js,
// one ES module loadable by <script type="module"> or a bundler (package.json's "browser"
// export), with beside it the three .wasm builds (kiln_wasm*_bg.wasm) and the threaded build's
// worker, kiln-worker.js (ts/backends/wasm-worker.ts). The bundle finds them with
// `new URL(file, import.meta.url)`, which bundlers such as Vite follow and emit as assets.
// Needs the wasm-bindgen `web` builds (bindings/wasm/pkg-web/, from scripts/build-wasm.mjs, run
// here when missing) and esbuild (in node_modules through vitest).
//
//   node scripts/build-web.mjs          # dist-web/
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { gzipSync } from 'node:zlib';
import { ROOT } from './lib.mjs';

const PKG_WEB = join(ROOT, 'bindings', 'wasm', 'pkg-web');
const OUT = join(ROOT, 'dist-web');

const BUILDS = ['kiln_wasm', 'kiln_wasm_relaxed', 'kiln_wasm_threads', 'kiln_wasm_gpu'];
if (BUILDS.some((b) => !existsSync(join(PKG_WEB, `${b}.js`)))) {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-wasm.mjs')], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

const require = createRequire(import.meta.url);
let esbuild;
try {
  esbuild = require('esbuild');
} catch {
  console.error('build-web: esbuild is missing: run `npm install` (it comes with vitest)');
  process.exit(1);
}

/** The glue file of each bare name the sources import (ts/types/kiln-wasm-web.d.ts). */
const GLUE = { 'kiln-wasm-web': 'kiln_wasm.js', 'kiln-wasm-web-relaxed': 'kiln_wasm_relaxed.js', 'kiln-wasm-web-threads': 'kiln_wasm_threads.js' };

/**
 * Each `kiln-wasm-web*` import becomes a module exporting `createGlue()`, which returns a fresh copy
 * of that build's wasm-bindgen glue. The glue keeps its instance in a module-level variable and
 * answers every later init with it, so one copy can never hold a second instance; a page whose
 * instance faulted (a Rust panic aborts a wasm32 instance) gets a fresh one from a new copy
 * (ts/backends/wasm-web.ts). The copy is the glue bundled as an IIFE inside a function; its
 * `import.meta.url` becomes the bundle's own (the .wasm files sit beside it).
 */
const glueFactories = {
  name: 'kiln-wasm-glue-factories',
  setup(build) {
    build.onResolve({ filter: /^kiln-wasm-web(-relaxed|-threads)?$/ }, (args) => ({ path: args.path, namespace: 'kiln-glue' }));
    build.onLoad({ filter: /.*/, namespace: 'kiln-glue' }, async (args) => {
      const glue = await esbuild.build({
        entryPoints: [join(PKG_WEB, GLUE[args.path])],
        bundle: true,
        write: false,
        format: 'iife',
        globalName: 'glue',
        platform: 'browser',
        target: 'es2022',
        define: { 'import.meta.url': 'glueBaseUrl' },
        logLevel: 'warning',
      });
      const body = glue.outputFiles[0].text;
      return { contents: `const glueBaseUrl = import.meta.url;\nexport function createGlue() {\n${body}\nreturn glue;\n}\n`, loader: 'js', resolveDir: PKG_WEB };
    });
  },
};

mkdirSync(OUT, { recursive: true });
const result = await esbuild.build({
  entryPoints: { kiln: join(ROOT, 'ts', 'browser.ts'), 'kiln-worker': join(ROOT, 'ts', 'backends', 'wasm-worker.ts') },
  outdir: OUT,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  plugins: [
    glueFactories,
    // The GPU module stays a file of its own (kiln_wasm_gpu.js, copied below), imported on demand by
    // setBackend('gpu'), so pages on WASM alone never download it.
    {
      name: 'kiln-gpu-module',
      setup(build) {
        build.onResolve({ filter: /^kiln-wasm-web-gpu$/ }, () => ({ path: './kiln_wasm_gpu.js', external: true }));
      },
    },
  ],
  // Saved models record the Kiln version; a page cannot read package.json (ts/io/version-web.ts).
  define: { __KILN_VERSION__: JSON.stringify(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version) },
  logLevel: 'warning',
  metafile: true,
});
// No Node module may reach the bundle: platform 'browser' fails on node: imports, and this checks the inputs.
const NODE_ONLY = /backends\/(native|wasm|node)\.ts$|io\/(files|model|checkpoint|version)\.ts$|data\/(idx-file|mnist|cora-file)\.ts$|train\/(metrics-logger|plot-file|checkpointing)\.ts$|viz\/files\.ts$/;
const nodeOnly = Object.keys(result.metafile.inputs).filter((f) => NODE_ONLY.test(f));
if (nodeOnly.length > 0) {
  console.error(`build-web: Node-only modules in the browser bundle: ${nodeOnly.join(', ')}`);
  process.exit(1);
}
for (const b of BUILDS) copyFileSync(join(PKG_WEB, `${b}_bg.wasm`), join(OUT, `${b}_bg.wasm`));
copyFileSync(join(PKG_WEB, 'kiln_wasm_gpu.js'), join(OUT, 'kiln_wasm_gpu.js'));
// Gzipped too: what a page downloads from a server that compresses (issue 20 asks for both modules).
const kb = (f) => {
  const bytes = readFileSync(join(OUT, f));
  return `${f} (${(bytes.length / 1024).toFixed(0)} KiB, gzipped ${(gzipSync(bytes, { level: 9 }).length / 1024).toFixed(0)} KiB)`;
};
console.log(`build-web: dist-web/: ${['kiln.js', 'kiln-worker.js', 'kiln_wasm_gpu.js', ...BUILDS.map((b) => `${b}_bg.wasm`)].map(kb).join(', ')}`);
