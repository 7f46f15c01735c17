// First-run set-up, shared by `npm test`, `npm start` and `npm run bench`: installs the npm
// dependencies, builds the native addon (napi-rs's CLI, into npm/<platform>/ where the platform
// package is packed from), and compiles the TypeScript. The WASM modules are built only for those
// who need them (`setup({ wasm: true })`: npm test, the bench; npm start's MNIST run does not).
// Each step is skipped when its output is newer than its inputs. `--force` redoes everything.
import { CARGO_TARGET_DIR, has, mtime, newest, run, step } from './lib.mjs';
import { buildWasm } from './build-wasm.mjs';
import { HOST_TRIPLE, addonHasGpu, addonPath, buildAddon } from './build-addon.mjs';
import { GLIBC_FLOOR, compareVersions, glibcFloor } from './glibc-floor.mjs';

const force = process.argv.includes('--force');

/**
 * `wasm`: also build the WASM modules (Node's and the browsers').
 * `portable`: the x86-64 glibc addon must be the one linked for glibc 2.17, as published
 * (prepack); a development build linked against this machine's glibc is rebuilt.
 * `gpu`: the addon must have the GPU backend; `npm start` asks for none (its MNIST job runs on
 * the CPU), which leaves wgpu out of a fresh build, and uses a full addon if one is built.
 */
export function setup({ wasm = false, portable = false, gpu = true } = {}) {
  // 1. npm dependencies.
  if (force || mtime('node_modules/.package-lock.json') < mtime('package-lock.json')) {
    step('installing npm dependencies (npm ci)');
    run('npm', ['ci', '--no-audit', '--no-fund']);
  }

  // 2. The native addon.
  const stale = mtime(addonPath()) < newest(['crates', 'bindings/node/src', 'bindings/node/Cargo.toml', 'Cargo.toml', 'Cargo.lock']);
  const wantPortable = portable && HOST_TRIPLE === 'x86_64-unknown-linux-gnu';
  const missingGpu = (gpu || wantPortable) && !addonHasGpu();
  if (force || stale || missingGpu || (wantPortable && compareVersions(glibcFloor(addonPath()) ?? '99', GLIBC_FLOOR) > 0)) {
    if (!has('cargo')) {
      console.error('[kiln] cargo is not installed. Install Rust (https://rustup.rs), then run this again.');
      process.exit(1);
    }
    const what = gpu || wantPortable ? '' : ' without the GPU backend (the MNIST job needs none)';
    step(`building the native addon${what} (napi build --release, cache in ${CARGO_TARGET_DIR}); the first build takes a few minutes`);
    buildAddon({ portable: wantPortable, gpu: gpu || wantPortable });
  }

  // 3. The WASM modules (rustup's wasm32 target, or Debian's rustc-web + build-std; scripts/build-wasm.mjs).
  if (wasm) buildWasm({ force });

  // 4. TypeScript -> dist/.
  if (force || mtime('dist/index.js') < newest(['ts', 'tsconfig.json'])) {
    step('compiling TypeScript (tsc)');
    run('npx', ['tsc', '-p', 'tsconfig.json']);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  setup({ wasm: !process.argv.includes('--no-wasm') });
  step('set-up complete');
}
