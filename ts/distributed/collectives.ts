/**
 * MPI collectives on native tensors: the user-facing half of bindings/node/src/distributed.rs.
 * They need the MPI build of the addon (kiln-mpi.node), which the loader picks when the process
 * runs under mpirun or when `init()` is called before the first tensor exists.
 *
 * Every rank must call the same collectives in the same order with tensors of the same dtype
 * and shape (as in MPI itself); a mismatch throws on every rank, naming the op and the ranks.
 */

import { backendNamed } from '../engine.js';
import { Tensor, wrap } from '../tensor.js';
import type { LoadedBackend } from '../backends/backend.js';

/** How `allReduce` and `reduceScatter` combine the ranks' values, element by element. */
export type ReduceOp = 'sum' | 'mean' | 'max' | 'min';

/** The MPI exports of kiln-mpi.node (absent from the plain addon). */
export interface MpiAddon {
  distInit(): { rank: number; worldSize: number };
  distInitialized(): boolean;
  distFinalize(): void;
  distSetTimeout(seconds: number): void;
  distBarrier(): void;
  distAllReduce(x: number, op: string): number;
  distBroadcast(x: number, root: number): number;
  distAllGather(x: number): number;
  distReduceScatter(x: number, op: string): number;
  distAllReduceGrads(params: number[], bucketBytes: number): number;
  distReducerCreate(params: number[], bucketBytes: number): number;
  distReducerFree(reducer: number): void;
  distReducerFinish(reducer: number, params: number[]): { buckets: number; overlapped: boolean; launchedInBackward: number; communicationMs: number; waitMs: number };
}

let info: { rank: number; worldSize: number } | null = null;

/** Internal (init.ts): records what MPI_Init returned; the collectives work from then on. */
export function setStarted(started: { rank: number; worldSize: number }): void {
  info = started;
}

/** Internal: the native backend and its MPI exports (which may be absent: init.ts checks). */
export function native(): { backend: LoadedBackend; mpi: MpiAddon } {
  const backend = backendNamed('native');
  return { backend, mpi: backend.impl as unknown as MpiAddon };
}

function started(op: string): MpiAddon {
  return mpiAddon(`distributed.${op}`);
}

/** Internal: the MPI exports, or an Error naming `caller` when init() has not run. */
export function mpiAddon(caller: string): MpiAddon {
  if (info === null) throw new Error(`${caller}: call kiln.distributed.init() first`);
  return native().mpi;
}

/** Whether `init()` has run in this process. */
export function isInitialized(): boolean {
  return info !== null;
}

/** This process's rank, 0 ... worldSize() - 1 (0 is the one that logs and writes checkpoints). */
export function rank(): number {
  started('rank');
  return info!.rank;
}

/** How many processes take part. */
export function worldSize(): number {
  started('worldSize');
  return info!.worldSize;
}

/** Waits until every rank has reached this call. */
export function barrier(): void {
  started('barrier').distBarrier();
}

/**
 * Sets how long one collective may wait for the other ranks (default 300 s). Past it, the rank
 * prints which op it was waiting in and aborts the whole job (MPI_Abort) instead of hanging.
 */
export function setTimeout(seconds: number): void {
  started('setTimeout').distSetTimeout(seconds);
}

/** Ends MPI (MPI_Finalize). Collectives throw afterwards; MPI cannot be started again. */
export function finalize(): void {
  if (info === null) return;
  const { mpi } = native();
  if (mpi.distInitialized()) mpi.distFinalize();
}

function handleOf(op: string, x: unknown): number {
  if (!(x instanceof Tensor)) throw new Error(`distributed.${op}: expected a Tensor, got ${typeof x}`);
  if (x.backend.handles !== 'native' || x.device !== 'cpu') {
    throw new Error(`distributed.${op}: collectives work on native CPU tensors; got a ${x.dtype} ${JSON.stringify(x.shape)} tensor on '${x.backend.name}' (${x.device}); move it with x.to('native')`);
  }
  return x.handle;
}

/**
 * Combines a float32 or int32 tensor element-wise across ranks; every rank gets the result
 * (a new tensor, same shape). `op`: 'sum' (default), 'mean', 'max' or 'min'.
 * x: any shape, the same on every rank. 'sum' and 'mean' are differentiable: backward
 * all-reduces the output's gradient the same way (every rank must then run backward through it,
 * as every rank ran the forward); 'max' and 'min' results carry no gradient.
 */
export function allReduce(x: Tensor, op: ReduceOp = 'sum'): Tensor {
  const mpi = started('allReduce');
  return wrap(mpi.distAllReduce(handleOf('allReduce', x), op), native().backend);
}

/** Every rank gets rank `root`'s tensor (each rank passes one of the same dtype and shape). */
export function broadcast(x: Tensor, root = 0): Tensor {
  const mpi = started('broadcast');
  if (!Number.isInteger(root)) throw new Error(`distributed.broadcast: root must be an integer rank, got ${root}`);
  return wrap(mpi.distBroadcast(handleOf('broadcast', x), root), native().backend);
}

/**
 * Concatenates every rank's tensor along axis 0 in rank order: [d0, ...] -> [worldSize * d0, ...]
 * (a scalar gives a vector of worldSize values).
 */
export function allGather(x: Tensor): Tensor {
  const mpi = started('allGather');
  return wrap(mpi.distAllGather(handleOf('allGather', x)), native().backend);
}

/**
 * Reduces across ranks like `allReduce`, then gives rank r only the r-th of worldSize equal
 * blocks along axis 0: [d0, ...] -> [d0 / worldSize, ...] (d0 must divide evenly).
 */
export function reduceScatter(x: Tensor, op: ReduceOp = 'sum'): Tensor {
  const mpi = started('reduceScatter');
  return wrap(mpi.distReduceScatter(handleOf('reduceScatter', x), op), native().backend);
}
