/** The native backend: kiln-core through the N-API addon built from bindings/node. */

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Backend } from './backend.js';

/** Where scripts/setup.mjs puts the addon (same relative path from ts/ and dist/). */
const ADDON_PATH = fileURLToPath(new URL('../../bindings/node/kiln.node', import.meta.url));
/** The same addon built with the `mpi` feature (`npm run build:mpi`; docs/distributed.md). */
export const MPI_ADDON_PATH = fileURLToPath(new URL('../../bindings/node/kiln-mpi.node', import.meta.url));

let wantMpi = false;
let addon: Backend | null = null;

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
  if (addon !== null) return wantMpi || launchedByMpi();
  wantMpi = true;
  return true;
}

export function loadNative(): Backend {
  if (addon !== null) return addon;
  if (wantMpi || launchedByMpi()) {
    if (!existsSync(MPI_ADDON_PATH)) {
      throw new Error(
        `kiln.distributed: the MPI build of the addon is not built (${MPI_ADDON_PATH} is missing). ` +
          'Install Open MPI (apt-get install openmpi-bin libopenmpi-dev libclang-dev), then run `npm run build:mpi`.',
      );
    }
    // RTLD_GLOBAL: Open MPI loads its transport plugins with dlopen, and they resolve libmpi's
    // symbols globally; with Node's default (local) binding they fail to load.
    const module = { exports: {} as Backend };
    process.dlopen(module, MPI_ADDON_PATH, constants.dlopen.RTLD_NOW | constants.dlopen.RTLD_GLOBAL);
    return (addon = module.exports);
  }
  if (!existsSync(ADDON_PATH)) {
    throw new Error(
      `kiln: the native addon is not built (${ADDON_PATH} is missing). ` +
        'Run `npm run build` (it needs cargo; `npm test` and `npm start` do this for you).',
    );
  }
  const require = createRequire(import.meta.url);
  return (addon = require(ADDON_PATH) as Backend);
}
