/** Data-parallel training over MPI (docs/distributed.md): collectives on native tensors. */
export { init } from './init.js';
export { isInitialized, rank, worldSize, barrier, setTimeout, finalize, allReduce, broadcast, allGather, reduceScatter } from './collectives.js';
export type { ReduceOp } from './collectives.js';
export { DistributedDataParallel, type DistributedDataParallelOptions, type GradientSyncStats } from './ddp.js';
export { DistributedDataLoader } from './loader.js';
