/**
 * DataLoader: walks a Dataset in batches, reshuffled every epoch, and hands each batch out as
 * kiln tensors.
 *
 * Why prefetch one batch ahead: assembling a batch (gathering rows in shuffled order, running
 * augmentations, building the label array) is JavaScript work. Done when the batch is requested it
 * sits between the last kernel of step i and the first kernel of step i+1, and the device idles.
 * Started as soon as batch i is handed out, it runs whenever the training loop yields to the event
 * loop (while a GPU step or an asynchronous readback is in flight), so batch i+1 is usually ready
 * when it is asked for. On a fully synchronous CPU step it costs the same total time, never more.
 * Only host arrays are prepared ahead: tensors are created at hand-out, so a loop that stops
 * early leaves no prefetched tensor behind.
 */

import type { Tensor } from '../tensor.js';
import { tensor } from '../ops/creation.js';
import type { Dataset, HostBatch } from './dataset.js';
import type { BatchTransform } from './augment.js';
import { deriveSeed, Random, resolveSeed, type Seed } from './random.js';
import { onNextTurn } from './next-turn.js';

/** Options of `DataLoader`: batch size, shuffling, augmentation and seeding. */
export interface DataLoaderOptions {
  /** Samples per batch. Default 32. */
  batchSize?: number;
  /** Visit samples in a new random order every epoch. Default false (dataset order). */
  shuffle?: boolean;
  /** Seed for the shuffles (and the order of epoch k is a function of seed and k). Omitted: random. */
  seed?: Seed;
  /** Skip the last batch when it is smaller than batchSize. Default false. */
  dropLast?: boolean;
  /** Applied to each batch's features before they become a tensor, e.g. an augmentation. */
  transform?: BatchTransform;
}

/** One batch, owned by the consumer: dispose both tensors (or create them inside tidy's reach). */
export interface TensorBatch {
  /** float32 [batch, ...rowShape] */
  x: Tensor;
  /** int32 (class labels) or float32 (targets) [batch, ...labelShape]; absent when the data set has no labels. */
  y?: Tensor;
}

interface Scheduled {
  promise: Promise<HostBatch>;
  cancel: () => void;
}

/**
 * Batches of a Dataset as tensors, asynchronously iterable; each `for await` over the loader is
 * one epoch.
 *
 *   const loader = new DataLoader(ds, { batchSize: 128, shuffle: true, seed: 1 });
 *   for await (const { x, y } of loader) {
 *     const loss = kiln.tidy(() => step(x, y));
 *     kiln.dispose([x, y, loss]);
 *   }
 *
 * The tensors it yields belong to the consumer: dispose them after the step (kiln.fit does), or
 * they stay allocated until the garbage collector finds them.
 */
export class DataLoader implements AsyncIterable<TensorBatch> {
  readonly dataset: Dataset;
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly transform: BatchTransform | undefined;
  readonly seed: number;
  #epoch = 0;

  constructor(dataset: Dataset, options: DataLoaderOptions = {}) {
    if (dataset === null || typeof dataset !== 'object' || typeof dataset.gather !== 'function' || !Number.isInteger(dataset.length)) {
      throw new Error('DataLoader: expected a Dataset (e.g. new TensorDataset(features, rowShape, labels))');
    }
    const batchSize = options.batchSize ?? 32;
    if (!Number.isInteger(batchSize) || batchSize <= 0) throw new Error(`DataLoader: batchSize must be a positive integer, got ${batchSize}`);
    if (options.transform !== undefined && typeof options.transform !== 'function') throw new Error('DataLoader: transform must be a function (x, shape) => Float32Array');
    this.dataset = dataset;
    this.batchSize = batchSize;
    this.shuffle = options.shuffle ?? false;
    this.dropLast = options.dropLast ?? false;
    this.transform = options.transform;
    this.seed = resolveSeed('DataLoader', options.seed);
  }

  /** Batches per epoch. */
  get length(): number {
    const n = this.dataset.length;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** The epoch the next iteration runs (0 first); set it to resume a run with the same orders. */
  get epoch(): number {
    return this.#epoch;
  }

  /** Sets the epoch counter (e.g. when resuming), which picks the next epoch's shuffle order. */
  set epoch(value: number) {
    if (!Number.isInteger(value) || value < 0) throw new Error(`DataLoader: epoch must be a non-negative integer, got ${value}`);
    this.#epoch = value;
  }

  /** The order in which epoch `epoch` visits the samples. -> Int32Array [dataset.length] */
  orderFor(epoch: number): Int32Array {
    const n = this.dataset.length;
    if (this.shuffle) return new Random(deriveSeed(this.seed, epoch)).permutation(n);
    const order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    return order;
  }

  /** Starts the next epoch. */
  [Symbol.asyncIterator](): AsyncIterator<TensorBatch> {
    return this.#run(this.orderFor(this.#epoch++));
  }

  async *#run(order: Int32Array): AsyncGenerator<TensorBatch> {
    const count = this.length;
    let ahead: Scheduled | undefined = count > 0 ? this.#schedule(order, 0) : undefined;
    try {
      for (let b = 0; b < count; b++) {
        const host = await ahead!.promise;
        ahead = b + 1 < count ? this.#schedule(order, b + 1) : undefined;
        yield this.#toTensors(host, Math.min(this.batchSize, order.length - b * this.batchSize));
      }
    } finally {
      // The consumer stopped early (break, or an exception in its step): drop the prefetch.
      ahead?.cancel();
    }
  }

  /** Assembles batch `b` on a later turn of the event loop; the promise settles with it. */
  #schedule(order: Int32Array, b: number): Scheduled {
    let cancel = (): void => {};
    const promise = new Promise<HostBatch>((resolve, reject) => {
      cancel = onNextTurn(() => {
        this.#assemble(order.subarray(b * this.batchSize, (b + 1) * this.batchSize)).then(resolve, reject);
      });
    });
    // A failure surfaces when the batch is awaited; until then (or if never) it is not "unhandled".
    promise.catch(() => {});
    return { promise, cancel };
  }

  async #assemble(indices: Int32Array): Promise<HostBatch> {
    const { x, y } = await this.dataset.gather(indices);
    if (this.transform === undefined) return { x, y };
    const shape = [indices.length, ...this.dataset.rowShape];
    const out = this.transform(x, shape);
    if (!(out instanceof Float32Array) || out.length !== x.length) {
      throw new Error(`DataLoader: transform must return a Float32Array of ${x.length} values for a batch of shape [${shape.join(', ')}]`);
    }
    return { x: out, y };
  }

  #toTensors(host: HostBatch, k: number): TensorBatch {
    const x = tensor(host.x, [k, ...this.dataset.rowShape]);
    if (host.y === undefined) return { x };
    try {
      return { x, y: tensor(host.y, [k, ...this.dataset.labelShape]) };
    } catch (e) {
      x.dispose();
      throw e;
    }
  }
}
