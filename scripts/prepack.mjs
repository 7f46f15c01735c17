// `prepack` (npm runs it before `npm pack` and `npm publish`): builds everything the package ships.
//   - this machine's native addon, stripped, into npm/<platform>/ (packed as its own package;
//     other platforms' come from `npm run build:platforms` or from CI machines, docs/packaging.md);
//     on x86-64 Linux linked against napi-rs's glibc 2.17 sysroot (scripts/napi-cross.mjs)
//   - the WASM modules (wasm-opt'ed) and the browser bundle dist-web/
//   - dist/ from a clean tsc run without source maps: the package ships no TypeScript sources, so
//     maps would point at nothing. (`npm run build` puts the maps back for development.)
//   - package.json's optionalDependencies: one per platform package (postpack takes them out).
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { setup } from './setup.mjs';
import { ROOT, run, step } from './lib.mjs';
import { setPlatformDependencies } from './platform-manifest.mjs';

setup({ wasm: true, portable: true });
run(process.execPath, [join(ROOT, 'scripts', 'build-web.mjs')]);
step('dist/: a clean tsc run without source maps');
rmSync(join(ROOT, 'dist'), { recursive: true, force: true });
run('npx', ['tsc', '-p', 'tsconfig.json', '--sourceMap', 'false']);
setPlatformDependencies(true);
