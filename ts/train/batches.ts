/**
 * Batches as the training loop sees them: any structure of tensors (a tensor, an array, a plain
 * object, nested), who owns them, where they live, and in-memory tensors cut into batches.
 *
 * Ownership: batches from an array belong to the caller (the same array is iterated every epoch,
 * so the loop must not free it); batches from any other iterable (a DataLoader, a generator) are
 * made fresh per epoch and belong to the loop, which frees them after the step.
 */

import type { Device, Tensor } from '../tensor.js';
import { tensor } from '../ops/creation.js';
import { gather } from '../ops/shape.js';
import { Random } from '../data/random.js';
import type { Batch, BatchSource, Inputs } from './types.js';

/** True for a kiln Tensor (not an array or object holding some). */
export function isTensor(value: unknown): value is Tensor {
  return typeof value === 'object' && value !== null && (value as { isKilnTensor?: unknown }).isKilnTensor === true;
}

/** The same structure with every tensor replaced by `fn(tensor)`; other values are kept. */
export function mapTensors<T>(value: T, fn: (t: Tensor) => Tensor): T {
  if (isTensor(value)) return fn(value) as T;
  if (Array.isArray(value)) return value.map((v) => mapTensors(v, fn)) as T;
  if (isPlainObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mapTensors(v, fn)])) as T;
  return value;
}

/** Every tensor in a structure, depth first. */
export function tensorsOf(value: unknown, out: Tensor[] = []): Tensor[] {
  if (isTensor(value)) out.push(value);
  else if (Array.isArray(value)) for (const v of value) tensorsOf(v, out);
  else if (isPlainObject(value)) for (const v of Object.values(value)) tensorsOf(v, out);
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Samples in a batch: the leading dimension of its targets, else of its first tensor (1 for a scalar). */
export function sampleCount(batch: unknown): number {
  const targets = (batch as { y?: unknown } | null)?.y;
  const first = isTensor(targets) ? targets : tensorsOf(batch)[0];
  return first?.shape[0] ?? 1;
}

/** One batch of a source as the loop hands it out: the batch (on the model's device) and how to free it. */
export interface LoopBatch<B> {
  batch: B;
  /** Frees what the loop owns: the batch's tensors if the source made them, and any device copies. */
  release(): void;
}

/**
 * Iterates one epoch of `source`, moving each batch to `device` (PyTorch's `x.to(device)` in
 * every loop, done here: data stays on the CPU, a model moved with model.to('gpu') gets its
 * batches uploaded). `device` undefined (a model without parameters) leaves them where they are.
 */
export async function* epochBatches<B>(source: BatchSource<B>, device: Device | undefined): AsyncGenerator<LoopBatch<B>> {
  const callerOwned = Array.isArray(source);
  const iterable = Symbol.asyncIterator in source ? (source as AsyncIterable<B>) : (source as Iterable<B>);
  for await (const original of iterable) {
    const copies: Tensor[] = [];
    const batch = mapTensors(original, (t) => {
      if (device === undefined || t.device === device) return t;
      const moved = t.to(device);
      copies.push(moved);
      return moved;
    });
    yield {
      batch,
      release: () => {
        for (const t of copies) t.dispose();
        if (!callerOwned) for (const t of tensorsOf(original)) t.dispose();
      },
    };
  }
}

/** Tensors in memory, as `fit(model, { x, y }, { batchSize })` takes them (Keras's `fit(x, y)`). */
export interface InMemoryData {
  /** A tensor [n, ...], or several (an array or object of tensors [n, ...]) for a model with several inputs. */
  x: Inputs;
  /** Targets [n, ...]; omitted for unsupervised training with a trainStep. */
  y?: Tensor;
}

/** True for `{ x, y }` holding tensors (not an iterable of batches). */
export function isInMemoryData(data: unknown): data is InMemoryData {
  if (typeof data !== 'object' || data === null || Symbol.iterator in data || Symbol.asyncIterator in data) return false;
  const x = (data as { x?: unknown }).x;
  return x !== undefined && tensorsOf(x).length > 0;
}

export interface InMemoryBatchOptions {
  batchSize: number;
  shuffle: boolean;
  /** Seed of the shuffles (epoch k's order is drawn from it); omitted: random. */
  seed?: number;
  /** Rows [begin, end) of the data are used. */
  begin: number;
  end: number;
}

/** Rows in the data: the leading dimension all its tensors share (checked). `op` names the caller in errors. */
export function rowCount(op: string, data: InMemoryData): number {
  const all = tensorsOf(data);
  const n = all[0].shape[0];
  if (n === undefined) throw new Error(`${op}: x must have a leading batch dimension, got a scalar`);
  for (const t of all) {
    if (t.shape[0] !== n) {
      const shapes = all.map((u) => `${u.dtype} [${u.shape.join(', ')}]`).join(', ');
      throw new Error(`${op}: every tensor of { x, y } must have the same number of rows (leading dimension); got ${shapes}`);
    }
  }
  return n;
}

/**
 * Rows [begin, end) of in-memory tensors in batches, reshuffled each epoch when `shuffle`. The
 * caller keeps the tensors; each batch is a fresh gather the loop frees. -> an iterable of
 * `{ x, y }` with the same structure as `data`.
 */
export function inMemoryBatches(data: InMemoryData, options: InMemoryBatchOptions): BatchSource<Batch> {
  const { batchSize, begin, end } = options;
  const rows = end - begin;
  const random = options.shuffle ? new Random(options.seed) : null;
  return {
    length: Math.ceil(rows / batchSize),
    *[Symbol.iterator](): Iterator<Batch> {
      const order = random ? random.permutation(rows) : Int32Array.from({ length: rows }, (_, i) => i);
      for (let lo = 0; lo < rows; lo += batchSize) {
        const picked = order.subarray(lo, Math.min(rows, lo + batchSize)).map((i) => i + begin);
        // The row indices, once per device the data lives on.
        const indices = new Map<Device, Tensor>();
        const indexOn = (device: Device): Tensor => {
          let index = indices.get(device);
          if (index === undefined) {
            index = tensor(picked, [picked.length], 'int32');
            if (index.device !== device) index.moveTo(device);
            indices.set(device, index);
          }
          return index;
        };
        try {
          yield mapTensors(data as Batch, (t) => gather(t, indexOn(t.device), 0));
        } finally {
          for (const index of indices.values()) index.dispose();
        }
      }
    },
  };
}

/** A loose description of a value for error messages. */
export function describeValue(value: unknown): string {
  if (isTensor(value)) return `a ${value.dtype} tensor [${value.shape.join(', ')}]`;
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (isPlainObject(value)) return `an object with keys ${Object.keys(value).join(', ') || '(none)'}`;
  return value === null ? 'null' : typeof value;
}
