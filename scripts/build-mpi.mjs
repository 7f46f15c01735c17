// The MPI build of the native addon (bindings/node/kiln-mpi.node: the addon with the `mpi` cargo
// feature, rsmpi over Open MPI; docs/distributed.md). Separate from the default addon so that
// `npm start` and a plain install never need Open MPI. `npm run build:mpi` runs it; `npm test`
// calls ensureMpi() and buildMpiAddon() before the distributed tests.
import { copyFileSync, existsSync, readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { CARGO_TARGET_DIR, ROOT, has, mtime, newest, run, step } from './lib.mjs';
import { HOST_CARGO, HOST_TRIPLE } from './build-addon.mjs';

export const MPI_ADDON = 'bindings/node/kiln-mpi.node';
// mpirun (openmpi-bin), the headers and libmpi for rsmpi's build (libopenmpi-dev) and libclang
// for its bindgen step (libclang-dev).
const PACKAGES = ['openmpi-bin', 'libopenmpi-dev', 'libclang-dev'];

function mpiInstalled() {
  return has('mpirun') && has('mpicc') && hasLibclang();
}

/** bindgen (inside rsmpi's build) loads libclang.so; Debian ships it in libclang-dev. */
function hasLibclang() {
  const dirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib'];
  if (dirs.some((d) => existsSync(join(d, 'libclang.so')))) return true;
  return existsSync('/usr/lib') && readdirSync('/usr/lib').some((d) => d.startsWith('llvm-') && existsSync(join('/usr/lib', d, 'lib', 'libclang.so')));
}

/** Installs Open MPI and libclang with apt-get when they are missing (as root, or through sudo). */
export function ensureMpi() {
  if (mpiInstalled()) return;
  if (!has('apt-get')) {
    console.error(`[kiln] Open MPI is missing and there is no apt-get: install ${PACKAGES.join(', ')} (or your system's Open MPI and libclang), then run this again.`);
    process.exit(1);
  }
  step(`installing Open MPI for the distributed tests (apt-get install -y ${PACKAGES.join(' ')}); once`);
  const root = process.getuid?.() === 0;
  // Another apt user may hold the lock (CI images, other shells): wait for it instead of failing.
  const apt = (args) => (root ? run('apt-get', ['-o', 'DPkg::Lock::Timeout=900', ...args]) : run('sudo', ['apt-get', '-o', 'DPkg::Lock::Timeout=900', ...args]));
  apt(['update']);
  apt(['install', '-y', '--no-install-recommends', ...PACKAGES]);
}

/** Builds kiln-mpi.node when it is older than its sources (`force`: always). */
export function buildMpiAddon({ force = false } = {}) {
  if (!force && mtime(MPI_ADDON) >= newest(['crates', 'bindings/node/src', 'bindings/node/Cargo.toml', 'Cargo.toml', 'Cargo.lock'])) return;
  step('building the MPI addon (cargo build --release -p kiln-node --features mpi)');
  // The addon build's target and flags (build-addon.mjs), so the dependencies it compiled are reused.
  run('cargo', ['build', '--release', '-p', 'kiln-node', '--features', 'mpi', ...HOST_CARGO.args], { env: HOST_CARGO.env });
  // Copy then rename, like setup.mjs: a running process keeps its mapping of the old file.
  const temp = join(ROOT, `${MPI_ADDON}.${process.pid}.tmp`);
  copyFileSync(join(CARGO_TARGET_DIR, ...(HOST_TRIPLE ? [HOST_TRIPLE] : []), 'release', 'libkiln_node.so'), temp);
  renameSync(temp, join(ROOT, MPI_ADDON));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  ensureMpi();
  buildMpiAddon({ force: process.argv.includes('--force') });
  step(`built ${MPI_ADDON}`);
}
