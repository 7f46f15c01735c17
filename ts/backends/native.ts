/**
 * The native backend: kiln-core through the N-API addon (the platform package; see
 * native-binary.ts), or its MPI build (kiln-mpi.node) in a process launched by mpirun or whose
 * `kiln.distributed.init()` came before any tensor (docs/distributed.md).
 */

import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Backend } from './backend.js';
import { describeFailure, loadNativeBinary, type NativeResult } from './native-binary.js';

/** The addon built with the `mpi` feature (`npm run build:mpi`; docs/distributed.md). */
export const MPI_ADDON_PATH = fileURLToPath(new URL('../../bindings/node/kiln-mpi.node', import.meta.url));

let wantMpi = false;
let result: NativeResult | undefined;

/**
 * Whether this process runs under an MPI launcher (Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE;
 * PMIx-based launchers set PMIX_RANK): then the MPI build of the addon is loaded from the start.
 */
export function launchedByMpi(): boolean {
  return process.env.OMPI_COMM_WORLD_SIZE !== undefined || process.env.PMIX_RANK !== undefined;
}

/**
 * Internal (distributed.init): asks for the MPI build of the addon. Returns false when the plain
 * addon is already loaded, since tensors already made live in its registry and cannot move.
 */
export function requestMpiAddon(): boolean {
  if (result !== undefined) return wantMpi || launchedByMpi();
  wantMpi = true;
  return true;
}

/** The MPI build; a missing build is an error (a distributed run must not fall back silently). */
function loadMpiAddon(): NativeResult {
  if (!existsSync(MPI_ADDON_PATH)) {
    throw new Error(
      `kiln.distributed: the MPI build of the addon is not built (${MPI_ADDON_PATH} is missing). ` +
        'Install Open MPI (apt-get install openmpi-bin libopenmpi-dev libclang-dev), then run `npm run build:mpi`.',
    );
  }
  // RTLD_GLOBAL: Open MPI loads its transport plugins with dlopen, and they resolve libmpi's
  // symbols globally; with Node's default (local) binding they fail to load.
  const module = { exports: {} };
  process.dlopen(module, MPI_ADDON_PATH, constants.dlopen.RTLD_NOW | constants.dlopen.RTLD_GLOBAL);
  return { ok: true, addon: module.exports, where: MPI_ADDON_PATH };
}

/** The addon load, tried once per process (a failed dlopen does not get better on a retry). */
export function nativeLoadResult(): NativeResult {
  return (result ??= wantMpi || launchedByMpi() ? loadMpiAddon() : loadNativeBinary());
}

/** The native backend; throws, saying where Kiln looked and what to install, when no binary loads. */
export function loadNative(): Backend {
  const r = nativeLoadResult();
  if (!r.ok) throw new Error(`kiln: ${describeFailure(r)}`);
  return r.addon as Backend;
}
