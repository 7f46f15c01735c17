// First-run set-up, shared by `npm test`, `npm start` and `npm run bench`: installs the npm
// dependencies, builds the native addon with cargo, and compiles the TypeScript. Each step is
// skipped when its output is newer than its inputs. `--force` redoes everything.
import { copyFileSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { CARGO_TARGET_DIR, ROOT, has, mtime, newest, run, step } from './lib.mjs';
import { buildWasm } from './build-wasm.mjs';

const force = process.argv.includes('--force');

export function setup() {
  // 1. npm dependencies.
  if (force || mtime('node_modules/.package-lock.json') < mtime('package-lock.json')) {
    step('installing npm dependencies (npm ci)');
    run('npm', ['ci', '--no-audit', '--no-fund']);
  }

  // 2. The native addon.
  const addon = 'bindings/node/kiln.node';
  if (force || mtime(addon) < newest(['crates', 'bindings/node/src', 'bindings/node/Cargo.toml', 'Cargo.toml', 'Cargo.lock'])) {
    if (!has('cargo')) {
      console.error('[kiln] cargo is not installed. Install Rust (https://rustup.rs), then run this again.');
      process.exit(1);
    }
    step(`building the native addon (cargo build --release, cache in ${CARGO_TARGET_DIR}); the first build takes a few minutes`);
    run('cargo', ['build', '--release', '-p', 'kiln-node']);
    mkdirSync(join(ROOT, 'bindings/node'), { recursive: true });
    // Copy then rename: overwriting the file in place would crash (SIGBUS) any running process
    // that has the old addon mapped; a rename leaves their mapping intact.
    const temp = join(ROOT, `${addon}.${process.pid}.tmp`);
    copyFileSync(join(CARGO_TARGET_DIR, 'release', 'libkiln_node.so'), temp);
    renameSync(temp, join(ROOT, addon));
  }

  // 3. The WASM module (Debian's rustc-web + build-std; see scripts/build-wasm.mjs).
  buildWasm({ force });

  // 4. TypeScript -> dist/.
  if (force || mtime('dist/index.js') < newest(['ts', 'tsconfig.json'])) {
    step('compiling TypeScript (tsc)');
    run('npx', ['tsc', '-p', 'tsconfig.json']);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  setup();
  step('set-up complete');
}
