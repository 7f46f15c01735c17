/**
 * DistributedDataParallel: the same model on every rank, each rank on its own shard of every
 * batch. At construction it copies rank 0's parameters and buffers to every rank. Gradients are
 * averaged across ranks in buckets (one MPI all-reduce per bucket, reverse parameter order):
 * each bucket is all-reduced by a communication thread as soon as backward has finished its
 * gradients, while backward computes the rest (overlap, bindings/node/src/grad_reducer.rs);
 * `syncGradients()` waits for the last buckets. Every rank's optimizer takes the same step and
 * the replicas stay identical.
 *
 *   kiln.distributed.init();
 *   const model = new kiln.distributed.DistributedDataParallel(makeModel());
 *   loss.backward(); model.syncGradients(); optimizer.step();
 *
 * With equal shards and a mean loss, N ranks x batch B follow 1 rank x batch N*B step for step.
 */

import { Module, type AnyModule } from '../nn/module.js';
import { noGrad } from '../autograd.js';
import { dispose } from '../engine.js';
import type { Tensor } from '../tensor.js';
import { tensor } from '../ops/creation.js';
import { allReduce, broadcast, mpiAddon, rank, worldSize } from './collectives.js';

/** How DistributedDataParallel groups gradients for the all-reduce. */
export interface DistributedDataParallelOptions {
  /**
   * Gradients are packed into buckets of about this many bytes, one all-reduce each (default
   * 25 MiB, PyTorch's default): fewer, larger messages amortize MPI's per-call latency.
   */
  bucketBytes?: number;
  /**
   * All-reduce each bucket during backward, as soon as its gradients are final (default true).
   * false: all buckets after backward, in syncGradients (the same result, bit for bit; for
   * measuring what the overlap hides).
   */
  overlap?: boolean;
}

/** How the last syncGradients went (times in milliseconds on this rank). */
export interface GradientSyncStats {
  /** All-reduce calls (buckets). */
  buckets: number;
  /** Whether the buckets ran during backward (false: after it, e.g. after two backward passes). */
  overlapped: boolean;
  /** Buckets whose all-reduce started during backward, before syncGradients was called. */
  launchedInBackward: number;
  /** Time spent in the all-reduces. */
  communicationMs: number;
  /** How long syncGradients blocked for them (communicationMs - waitMs was hidden behind backward). */
  waitMs: number;
}

export class DistributedDataParallel<M extends AnyModule> extends Module<Parameters<M['forward']>, ReturnType<M['forward']>> {
  /** The wrapped model (its state dict keys gain the prefix 'module.', as in PyTorch). */
  readonly module: M;
  readonly bucketBytes: number;
  readonly overlap: boolean;
  /** Statistics of the last syncGradients (null before the first, and in a world of one). */
  lastSync: GradientSyncStats | null = null;
  /** The addon's reducer that holds the gradient-ready hooks (null without overlap). */
  private readonly reducer: number | null = null;

  /** Wraps `module` and copies rank 0's parameters and buffers into every rank's replica. */
  constructor(module: M, options: DistributedDataParallelOptions = {}) {
    super();
    if (!(module instanceof Module)) throw new Error(`DistributedDataParallel: expected an nn.Module, got ${typeof module}`);
    this.bucketBytes = options.bucketBytes ?? 25 * 1024 * 1024;
    if (!(this.bucketBytes > 0)) throw new Error(`DistributedDataParallel: bucketBytes must be positive, got ${options.bucketBytes}`);
    rank(); // throws, naming the op, when init() was not called
    this.overlap = options.overlap ?? true;
    if (typeof this.overlap !== 'boolean') throw new Error(`DistributedDataParallel: overlap must be true or false, got ${JSON.stringify(options.overlap)}`);
    this.module = module;
    this.syncState('all');
    if (this.overlap && worldSize() > 1) {
      this.reducer = mpiAddon('DistributedDataParallel').distReducerCreate(this.gradientHandles('DistributedDataParallel'), this.bucketBytes);
    }
  }

  private gradientHandles(caller: string): number[] {
    const params = this.module.parameters();
    if (params.some((p) => p.isDisposed)) throw new Error(`${caller}: the model's parameters were disposed (DistributedDataParallel.dispose() or module.dispose())`);
    return params.filter((p) => p.requiresGrad).map((p) => p.handle);
  }

  /** Runs the wrapped model on this rank's shard of the batch. */
  forward(...inputs: Parameters<M['forward']>): ReturnType<M['forward']> {
    return this.module.forward(...inputs);
  }

  /**
   * Makes every parameter's gradient its mean across ranks (call after backward, before the
   * optimizer step): waits for the buckets backward started and all-reduces the rest. Returns
   * the number of all-reduce calls (buckets); `lastSync` has the timings.
   */
  syncGradients(): number {
    if (worldSize() === 1) return 0;
    const mpi = mpiAddon('DistributedDataParallel.syncGradients');
    const handles = this.gradientHandles('DistributedDataParallel.syncGradients');
    if (this.reducer !== null) {
      this.lastSync = mpi.distReducerFinish(this.reducer, handles);
    } else {
      const start = performance.now();
      const buckets = mpi.distAllReduceGrads(handles, this.bucketBytes);
      const ms = performance.now() - start;
      this.lastSync = { buckets, overlapped: false, launchedInBackward: 0, communicationMs: ms, waitMs: ms };
    }
    return this.lastSync.buckets;
  }

  /** Frees the wrapped model's tensors and the gradient hooks and buffers of the overlap. */
  override dispose(): void {
    if (this.reducer !== null) mpiAddon('DistributedDataParallel.dispose').distReducerFree(this.reducer);
    super.dispose();
  }

  /** Whether this rank shows progress and logs (rank 0), for fit({ distributed: true }). */
  get isLoggingRank(): boolean {
    return rank() === 0;
  }

  /** The mean of a number across ranks (fit's loss guard: all ranks skip or stop together). */
  meanAcrossRanks(value: number): number {
    return this.meanLogsAcrossRanks({ value }).value;
  }

  /** Each numeric entry of `logs` replaced by its mean across ranks (one all-reduce). */
  meanLogsAcrossRanks<L extends Record<string, number>>(logs: L): L {
    const keys = Object.keys(logs).sort();
    if (worldSize() === 1 || keys.length === 0) return logs;
    const local = tensor(keys.map((k) => logs[k]), [keys.length]);
    const mean = allReduce(local, 'mean');
    const values = mean.dataSync();
    dispose([local, mean]);
    return Object.fromEntries(keys.map((k, i) => [k, values[i]])) as L;
  }

  /**
   * Copies rank 0's buffers (BatchNorm running statistics), or parameters and buffers
   * ('all'), to every rank, in place.
   */
  syncState(what: 'buffers' | 'all' = 'buffers'): void {
    const own = what === 'all' ? this.module.stateDict() : Object.fromEntries(this.module.namedBuffers());
    if (worldSize() === 1 || Object.keys(own).length === 0) return;
    const fromRoot: Record<string, Tensor> = {};
    try {
      for (const [name, t] of Object.entries(own)) fromRoot[name] = broadcast(t.detach(), 0);
      noGrad(() => this.module.loadStateDict(fromRoot, { strict: false }));
    } finally {
      dispose(Object.values(fromRoot));
    }
  }
}
