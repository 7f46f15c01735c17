/**
 * `distributed.init()`: loads the MPI build of the addon and starts MPI. Apart from the other
 * collectives because it reaches the Node-only addon loader (backends/native.ts): the browser
 * bundle, which carries nn.SyncBatchNorm and so the collectives module, must not pull it in.
 */

import { requestMpiAddon } from '../backends/native.js';
import { finalize, isInitialized, native, rank, setStarted, worldSize } from './collectives.js';

/**
 * Starts MPI and returns this process's rank and the world size (read from the launcher:
 * `mpirun -np N node train.mjs`). Without a launcher it is a world of one. Call it before
 * creating tensors unless the process runs under mpirun (then any time). Calling it again
 * returns the same values.
 */
export function init(): { rank: number; worldSize: number } {
  if (isInitialized()) return { rank: rank(), worldSize: worldSize() };
  if (!requestMpiAddon()) {
    throw new Error(
      'distributed.init: tensors were created before init() with the addon built without MPI; ' +
        'call kiln.distributed.init() before creating any tensor, or launch the program with mpirun',
    );
  }
  const { mpi } = native();
  if (typeof mpi.distInit !== 'function') {
    throw new Error('distributed.init: the loaded native addon has no MPI support; rebuild it with `npm run build:mpi`');
  }
  const started = mpi.distInit();
  setStarted(started);
  // A clean exit finalizes MPI for the user. A failing exit must not: MPI_Finalize waits for the
  // other ranks, which may be blocked in a collective this rank will never join; exiting without
  // it makes mpirun end the whole job instead (docs/distributed.md, Failure).
  process.on('exit', (code) => {
    if (code === 0) finalize();
  });
  return started;
}
