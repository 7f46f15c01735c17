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
import { KILN_VERSION_DEFINE, kilnWebPlugins, PKG_WEB } from './web-bundle.mjs';

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

mkdirSync(OUT, { recursive: true });
const result = await esbuild.build({
  entryPoints: { kiln: join(ROOT, 'ts', 'browser.ts'), 'kiln-worker': join(ROOT, 'ts', 'backends', 'wasm-worker.ts') },
  outdir: OUT,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  plugins: kilnWebPlugins(esbuild),
  define: KILN_VERSION_DEFINE,
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
