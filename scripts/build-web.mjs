// Bundles Kiln for browsers: ts/browser.ts (the API on the WASM backend) into dist-web/kiln.js,
// one ES module loadable by <script type="module">, with kiln_wasm_bg.wasm copied beside it.
// Needs the wasm-bindgen `web` build (bindings/wasm/pkg-web/, from scripts/build-wasm.mjs, run
// here when it is missing) and esbuild (in node_modules through vitest).
//
//   node scripts/build-web.mjs          # dist-web/kiln.js + dist-web/kiln_wasm_bg.wasm
import { copyFileSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { ROOT } from './lib.mjs';

const PKG_WEB = join(ROOT, 'bindings', 'wasm', 'pkg-web');
const OUT = join(ROOT, 'dist-web');

if (!existsSync(join(PKG_WEB, 'kiln_wasm.js'))) {
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
  entryPoints: [join(ROOT, 'ts', 'browser.ts')],
  outfile: join(OUT, 'kiln.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  // The `web` build is a build output, so browser.ts imports it by a bare name (ts/types/kiln-wasm-web.d.ts).
  alias: { 'kiln-wasm-web': join(PKG_WEB, 'kiln_wasm.js') },
  logLevel: 'warning',
  metafile: true,
});
// No Node module may reach the bundle: platform 'browser' fails on node: imports, and this checks the inputs.
const nodeOnly = Object.keys(result.metafile.inputs).filter((f) => /backends\/(native|wasm)\.ts$|io\/(files|model)\.ts$/.test(f));
if (nodeOnly.length > 0) {
  console.error(`build-web: Node-only modules in the browser bundle: ${nodeOnly.join(', ')}`);
  process.exit(1);
}
copyFileSync(join(PKG_WEB, 'kiln_wasm_bg.wasm'), join(OUT, 'kiln_wasm_bg.wasm'));
const kb = (f) => `${(statSync(join(OUT, f)).size / 1024).toFixed(0)} KiB`;
console.log(`build-web: dist-web/kiln.js (${kb('kiln.js')}), dist-web/kiln_wasm_bg.wasm (${kb('kiln_wasm_bg.wasm')})`);
