/**
 * Contrastive pre-training with `fit`: each batch holds two augmented views of the same images
 * stacked along the batch axis ([view 1 of B images; view 2 of them], so [2B, C, H, W]); the model
 * embeds all 2B at once and `contrastiveLoss` pairs row i with row B + i for NT-Xent. Labels are
 * never read: the data is unlabeled.
 */

import { ntXent, type NtXentOptions } from '../contrastive.js';
import { tensor } from '../ops/creation.js';
import { slice } from '../ops/shape.js';
import type { Tensor } from '../tensor.js';
import type { BatchTransform } from '../data/augment.js';
import { gatherRows } from '../data/split.js';
import { Random } from '../data/random.js';
import type { Batch, BatchSource } from '../train/types.js';
import type { LossFn } from '../train/step.js';

export interface ContrastiveBatchesOptions {
  /** Images per batch (the batch tensors hold twice as many rows: both views). */
  batchSize: number;
  /** The random augmentation that makes a view (applied twice, independently, per batch). */
  augment: BatchTransform;
  /** Shuffling seed (default 0); every epoch draws a new order and new views. */
  seed?: number;
}

/**
 * Batches of two views for `fit`. images: [N · C · H · W] values, imageShape [C, H, W] ->
 * batches { x: [2B, C, H, W], y: int32 zeros [2B] (unused) }; the last partial batch is dropped
 * so every batch has the same number of negatives.
 */
export function contrastiveBatches(images: Float32Array, imageShape: [number, number, number], options: ContrastiveBatchesOptions): BatchSource {
  const [c, h, w] = imageShape;
  const size = c * h * w;
  if (!(images instanceof Float32Array) || images.length % size !== 0 || images.length === 0) {
    throw new Error(`contrastiveBatches: images must be a non-empty Float32Array of whole [${imageShape.join(', ')}] images, got ${images?.length} values`);
  }
  const n = images.length / size;
  const b = options.batchSize;
  if (!Number.isInteger(b) || b < 2 || b > n) throw new Error(`contrastiveBatches: batchSize must be an integer in [2, ${n}] (the other images are the negatives), got ${b}`);
  const rng = new Random(options.seed ?? 0);
  const count = Math.floor(n / b);
  return {
    length: count,
    *[Symbol.iterator](): Iterator<Batch> {
      const order = rng.permutation(n);
      for (let s = 0; s < count; s++) {
        const rows = gatherRows(images, size, order.subarray(s * b, (s + 1) * b));
        const shape = [b, c, h, w];
        const both = new Float32Array(2 * b * size);
        both.set(options.augment(rows, shape));
        both.set(options.augment(rows, shape), b * size);
        yield { x: tensor(both, [2 * b, c, h, w]), y: tensor(new Int32Array(2 * b), [2 * b]) };
      }
    },
  };
}

/**
 * The loss for `fit` on contrastiveBatches: NT-Xent between the first and second half of the
 * model's output. outputs: [2B, dim] -> [].
 */
export function contrastiveLoss(options: NtXentOptions = {}): LossFn {
  return (outputs: Tensor) => {
    const rows = outputs.shape[0] ?? 0;
    if (outputs.shape.length !== 2 || rows % 2 !== 0) {
      throw new Error(`contrastiveLoss: expected the model's embeddings of both views [2 * batch, dim], got [${outputs.shape.join(', ')}]`);
    }
    const half = rows / 2;
    return ntXent(slice(outputs, [0, 0], [half, -1]), slice(outputs, [half, 0], [half, -1]), options);
  };
}
