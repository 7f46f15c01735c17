// What every esbuild bundle of Kiln's browser sources needs (scripts/build-web.mjs builds
// dist-web/ with it; tests/browser/shared-suites-webgpu.test.ts bundles the shared test suites
// with it): the wasm-bindgen glue of the WASM builds, and the GPU module kept as a file of its own.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './lib.mjs';

export const PKG_WEB = join(ROOT, 'bindings', 'wasm', 'pkg-web');

// Saved models record the Kiln version; a page cannot read package.json (ts/io/version-web.ts).
export const KILN_VERSION_DEFINE = { __KILN_VERSION__: JSON.stringify(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version) };

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
function glueFactories(esbuild) {
  return {
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
}

/** The plugins of a Kiln browser bundle (`esbuild`: the caller's esbuild module). */
export function kilnWebPlugins(esbuild) {
  return [
    glueFactories(esbuild),
    // The GPU module stays a file of its own (kiln_wasm_gpu.js, beside the bundle), imported on
    // demand by setBackend('gpu'), so pages on WASM alone never download it.
    {
      name: 'kiln-gpu-module',
      setup(build) {
        build.onResolve({ filter: /^kiln-wasm-web-gpu$/ }, () => ({ path: './kiln_wasm_gpu.js', external: true }));
      },
    },
  ];
}
