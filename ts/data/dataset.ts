/**
 * TensorDataset: samples held as flat typed arrays in JS memory, turned into tensors one batch at a
 * time by a DataLoader. Keeping the whole set host-side means only a batch lives in the backend.
 */

import { gatherLabels, gatherRows } from './split.js';

/** Class labels (int32; MNIST's Uint8Array is accepted as is) or regression targets (float32). */
export type Labels = Int32Array | Uint8Array | Float32Array;

/** One batch before it becomes tensors. */
export interface HostBatch {
  /** [batch * rowSize] */
  x: Float32Array;
  /** [batch * labelSize]; absent for a data set without labels. */
  y?: Int32Array | Float32Array;
}

/**
 * What a DataLoader needs from a data set: its size, the shape of one sample, and the samples for
 * a list of indices. TensorDataset implements it over typed arrays; a data set that reads files
 * lazily can implement it too (gather may be async).
 */
export interface Dataset {
  readonly length: number;
  /** One sample's feature shape (x is [batch, ...rowShape]). */
  readonly rowShape: readonly number[];
  /** One sample's label shape, [] for a scalar label (y is [batch, ...labelShape]). */
  readonly labelShape: readonly number[];
  /** The samples `indices` names: x [k * prod(rowShape)], y [k * prod(labelShape)]. */
  gather(indices: ArrayLike<number>): HostBatch | Promise<HostBatch>;
}

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function checkShape(what: string, shape: unknown): number[] {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new Error(`TensorDataset: ${what} must be an array of positive integers, got ${JSON.stringify(shape)}`);
  }
  return [...shape];
}

/**
 * Pairs features with labels, sample by sample.
 *
 *   const ds = new TensorDataset(scale(images, 1 / 255), [1, 28, 28], labels);
 *   const unlabeled = new TensorDataset(scale(images, 1 / 255), [1, 28, 28]);   // batches { x } only
 *
 * features: Float32Array [n * prod(rowShape)]; labels: [n * prod(labelShape)] (labelShape default
 * [], one label per sample). A batch is x [batch, ...rowShape] float32, y [batch, ...labelShape]
 * int32 for Int32Array/Uint8Array labels, float32 for Float32Array targets.
 */
export class TensorDataset implements Dataset {
  readonly features: Float32Array;
  /** null for an unlabeled data set (self-supervised or generative training): its batches have no y. */
  readonly labels: Labels | null;
  readonly rowShape: readonly number[];
  readonly labelShape: readonly number[];
  /** Elements per sample: prod(rowShape). */
  readonly rowSize: number;
  readonly labelSize: number;
  /** Number of samples. */
  readonly length: number;

  constructor(features: Float32Array, rowShape: number[], labels: Labels | null = null, labelShape: number[] = []) {
    if (!(features instanceof Float32Array)) {
      const got = features === null || typeof features !== 'object' ? String(features) : (features as object).constructor.name;
      throw new Error(`TensorDataset: features must be a Float32Array, got ${got} (convert pixels with scale(images, 1 / 255))`);
    }
    if (labels !== null && !(labels instanceof Int32Array || labels instanceof Uint8Array || labels instanceof Float32Array)) {
      throw new Error('TensorDataset: labels must be an Int32Array or Uint8Array (classes), a Float32Array (regression targets), or omitted (no labels)');
    }
    this.rowShape = checkShape('rowShape', rowShape);
    this.labelShape = checkShape('labelShape', labelShape);
    this.rowSize = sizeOf(this.rowShape);
    this.labelSize = sizeOf(this.labelShape);
    const n = features.length / this.rowSize;
    if (!Number.isInteger(n)) {
      throw new Error(`TensorDataset: ${features.length} feature values do not divide into rows of shape [${rowShape.join(', ')}] (${this.rowSize} values each)`);
    }
    if (labels !== null && labels.length !== n * this.labelSize) {
      throw new Error(`TensorDataset: ${n} rows of features but ${labels.length} label values (expected ${n * this.labelSize} for label shape [${labelShape.join(', ')}])`);
    }
    this.features = features;
    this.labels = labels;
    this.length = n;
  }

  /** The dtype batches' y has: 'float32' for Float32Array targets, else 'int32'. */
  get labelDType(): 'int32' | 'float32' {
    return this.labels instanceof Float32Array ? 'float32' : 'int32';
  }

  /** Copies the samples `indices` names into new arrays. indices [k] -> x [k * rowSize], y [k * labelSize] (no y without labels) */
  gather(indices: ArrayLike<number>): HostBatch {
    const x = gatherRows(this.features, this.rowSize, indices);
    if (this.labels === null) return { x };
    const y = this.labels instanceof Float32Array ? gatherLabels(this.labels, indices, this.labelSize) : gatherLabels(this.labels, indices, this.labelSize);
    return { x, y };
  }
}
