// Builds the WASM backend: kiln-core + bindings/wasm for wasm32-unknown-unknown in three
// variants, then wasm-bindgen into bindings/wasm/pkg-node/ (Node, CommonJS: a module Node can load
// afresh after a fault, ts/backends/wasm.ts) and bindings/wasm/pkg-web/ (browsers, ES module), and
// wasm-opt -O3 on each module:
//   kiln_wasm          SIMD128, single-threaded: runs on every engine with WASM SIMD
//   kiln_wasm_relaxed  + relaxed-simd (fused multiply-add in the GEMM kernel): Chromium 114+,
//                      Node 22+ (Node 20 behind a V8 flag that ts/backends/wasm.ts turns on)
//   kiln_wasm_threads  + relaxed-simd, atomics, shared memory: Kiln's Web Worker pool, for pages
//                      that are cross-origin isolated (browsers only)
//   kiln_wasm_gpu      SIMD128 + kiln-gpu on WebGPU (cargo feature `gpu`): the GPU backend of a
//                      page, loaded only by `setBackend('gpu')` (browsers only; no atomics, as
//                      wgpu's `fragile-send-sync-non-atomic-wasm` requires)
// The loaders pick the best variant the engine accepts. Each step is skipped when its output is
// newer than its inputs; `--force` redoes everything.
//
// The compiler: rustup's, when its wasm32-unknown-unknown target is installed (`rustup target add
// wasm32-unknown-unknown`); the threaded build rebuilds std with atomics, so it also needs rustup's
// rust-src component. Otherwise Debian's rustc-web (rustc with the std sources) builds std itself
// with -Zbuild-std, the route on machines where rustup cannot reach its server. wasm-pack expects a
// rustup target, so this script runs what wasm-pack runs underneath (cargo build + wasm-bindgen),
// then wasm-opt (npm package binaryen) on each module. See docs/packaging.md.
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { ROOT, mtime, newest, run, step } from './lib.mjs';

/** The wasm-bindgen CLI must be exactly the version of the `wasm-bindgen` crate (bindings/wasm/Cargo.toml). */
const WASM_BINDGEN_VERSION = '0.2.130';
const CACHE = join(homedir(), '.cache', 'kiln');
const WASM_TARGET_DIR = process.env.KILN_WASM_TARGET_DIR ?? join(CACHE, 'wasm-target');
const WASM_BINDGEN = join(CACHE, 'bin', 'wasm-bindgen');
/** binaryen's optimizer, from npm (devDependency `binaryen`). */
const WASM_OPT = join(ROOT, 'node_modules', '.bin', 'wasm-opt');
const DEBIAN_RUSTC = '/usr/bin/rustc';
const DEBIAN_CARGO = '/usr/bin/cargo';
const DEBIAN_RUST_SRC = '/usr/lib/rustlib/src/rust/library';
/** Largest shared memory the threaded build may grow to (a shared memory must declare one). */
const THREADS_MAX_MEMORY = 4 * 1024 ** 3 - 64 * 1024;

/**
 * The variants: name (output file stem), target features, extra linker flags. Each has its own
 * cargo target directory: different RUSTFLAGS rebuild everything.
 */
const VARIANTS = [
  { name: 'kiln_wasm', dir: '', features: '+simd128', link: [], targets: ['nodejs', 'web'] },
  { name: 'kiln_wasm_relaxed', dir: 'relaxed', features: '+simd128,+relaxed-simd', link: [], targets: ['nodejs', 'web'] },
  {
    name: 'kiln_wasm_threads',
    dir: 'threads',
    features: '+simd128,+relaxed-simd,+atomics,+bulk-memory,+mutable-globals',
    // Shared memory, created by the JS glue and handed to every worker's instance; the TLS
    // symbols let wasm-bindgen give each thread its own thread-local storage and stack.
    link: [
      '--shared-memory',
      '--import-memory',
      `--max-memory=${THREADS_MAX_MEMORY}`,
      '--export=__wasm_init_tls',
      '--export=__tls_size',
      '--export=__tls_align',
      '--export=__tls_base',
    ],
    // Shared memory needs a std compiled with atomics: no prebuilt std has them.
    buildStd: true,
    targets: ['web'],
  },
  { name: 'kiln_wasm_gpu', dir: 'gpu', features: '+simd128', link: [], cargoFeatures: ['gpu'], targets: ['web'] },
];
const builtPath = (v) => join(WASM_TARGET_DIR, v.dir, 'wasm32-unknown-unknown', 'release', 'kiln_wasm.wasm');
/** The RUSTFLAGS a variant is built with; a stamp beside the output records them (a change rebuilds). */
const rustflags = (v, lld) => [`-C target-feature=${v.features}`, `-C linker=${lld}`, ...v.link.map((a) => `-C link-arg=${a}`)].join(' ');
const stampPath = (v) => `${builtPath(v)}.flags`;
const flagsChanged = (v) => !existsSync(stampPath(v)) || readFileSync(stampPath(v), 'utf8') !== rustflags(v, findLinker());

function output(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** rust-lld links wasm32; rustup's copy is there whenever the native build works, Debian's lld is the fallback. */
function findLinker() {
  const toolchains = join(homedir(), '.rustup', 'toolchains');
  if (existsSync(toolchains)) {
    for (const tc of readdirSync(toolchains)) {
      const lld = join(toolchains, tc, 'lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld');
      if (existsSync(lld)) return lld;
    }
  }
  for (const lld of ['/usr/bin/rust-lld', '/usr/bin/wasm-ld', '/usr/bin/wasm-ld-16']) if (existsSync(lld)) return lld;
  return null;
}

/** rustup's components for the default toolchain: whether it has wasm32's std and the std sources. */
function rustupWasm() {
  const targets = output('rustup', ['target', 'list', '--installed'])?.split('\n') ?? [];
  const components = output('rustup', ['component', 'list', '--installed'])?.split('\n') ?? [];
  return { target: targets.includes('wasm32-unknown-unknown'), src: components.some((c) => c.startsWith('rust-src')) };
}

/**
 * How to compile a variant: rustup's cargo and rustc when they can (the prebuilt wasm32 std, or
 * rust-src for a variant that rebuilds std), else Debian's rustc-web with -Zbuild-std.
 */
function compilerFor(v, rustup) {
  const buildStd = ['-Zbuild-std=std,panic_abort'];
  if (rustup.target && !v.buildStd) return { route: 'rustup', cargo: 'cargo', env: {}, args: [] };
  if (rustup.target && rustup.src) return { route: 'rustup', cargo: 'cargo', env: { RUSTC_BOOTSTRAP: '1' }, args: buildStd };
  ensureRustWeb();
  // Debian's rustc: rustup's (first on PATH) has no wasm32 std. RUSTC_BOOTSTRAP unlocks -Zbuild-std.
  return { route: 'Debian rustc-web', cargo: DEBIAN_CARGO, env: { RUSTC: DEBIAN_RUSTC, RUSTC_BOOTSTRAP: '1' }, args: buildStd };
}

/** Debian's rustc-web ships the std sources -Zbuild-std compiles for wasm32; install it if missing. */
function ensureRustWeb() {
  if (existsSync(DEBIAN_RUSTC) && existsSync(DEBIAN_CARGO) && existsSync(DEBIAN_RUST_SRC)) return;
  step('installing Debian\'s rustc-web, cargo-web and rust-web-src (rustc with the std sources for wasm32)');
  const sudo = process.getuid?.() === 0 ? [] : ['sudo'];
  const apt = (args) => run(sudo.length ? 'sudo' : 'apt-get', sudo.length ? ['apt-get', ...args] : args);
  apt(['update']);
  apt(['install', '-y', 'rustc-web', 'cargo-web', 'rust-web-src']);
}

function ensureWasmBindgen() {
  const have = existsSync(WASM_BINDGEN) ? output(WASM_BINDGEN, ['--version']) : null;
  if (have === `wasm-bindgen ${WASM_BINDGEN_VERSION}`) return;
  step(`installing wasm-bindgen-cli ${WASM_BINDGEN_VERSION} into ${CACHE}/bin (cargo install; takes a few minutes, once)`);
  // Not --locked: the CLI's lock file pins webpki-roots 1.0.11, which this registry mirror lacked.
  run('cargo', ['install', 'wasm-bindgen-cli', '--version', WASM_BINDGEN_VERSION, '--root', CACHE]);
}

export function buildWasm({ force = false } = {}) {
  const inputs = (v) => ['crates/kiln-core', 'crates/kiln-registry', 'crates/kiln-boundary', 'bindings/wasm', ...(v.cargoFeatures?.includes('gpu') ? ['crates/kiln-gpu'] : [])];
  const stale = VARIANTS.filter((v) => force || mtime(builtPath(v)) < newest(inputs(v)) || flagsChanged(v));
  if (stale.length > 0) {
    ensureRustWeb();
    const lld = findLinker();
    if (!lld) {
      console.error('[kiln] no wasm linker found (rust-lld from rustup, or Debian\'s lld). Install lld, then run this again.');
      process.exit(1);
    }
    const rustup = rustupWasm();
    for (const v of stale) {
      const compiler = compilerFor(v, rustup);
      step(`building the WASM module ${v.name} (${v.features}; ${compiler.route}; cache in ${join(WASM_TARGET_DIR, v.dir)}); the first build takes a few minutes`);
      const features = v.cargoFeatures ? ['--features', v.cargoFeatures.join(',')] : [];
      run(compiler.cargo, ['build', '--release', ...compiler.args, ...features, '--target', 'wasm32-unknown-unknown'], {
        cwd: join(ROOT, 'bindings/wasm'),
        env: {
          ...compiler.env,
          CARGO_TARGET_DIR: join(WASM_TARGET_DIR, v.dir),
          RUSTFLAGS: rustflags(v, lld),
        },
      });
      writeFileSync(stampPath(v), rustflags(v, lld));
    }
  }

  const dirs = { nodejs: ['bindings/wasm/pkg-node', 'commonjs'], web: ['bindings/wasm/pkg-web', 'module'] };
  for (const v of VARIANTS) {
    for (const target of v.targets) {
      const [dir, type] = dirs[target];
      const out = join(ROOT, dir);
      const wasm = join(out, `${v.name}_bg.wasm`);
      if (!force && mtime(wasm) >= mtime(builtPath(v))) continue;
      ensureWasmBindgen();
      step(`wasm-bindgen --target ${target} -> ${dir}/${v.name}.js, then wasm-opt -O3`);
      run(WASM_BINDGEN, ['--target', target, '--out-dir', out, '--out-name', v.name, builtPath(v)]);
      // wasm-opt reads the module's target_features section, so it keeps to the variant's features.
      run(WASM_OPT, ['-O3', wasm, '-o', wasm]);
      // The root package.json says "type": "module"; the nodejs output is CommonJS.
      writeFileSync(join(out, 'package.json'), JSON.stringify({ type }, null, 2) + '\n');
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  buildWasm({ force: process.argv.includes('--force') });
  step('WASM build complete');
}
