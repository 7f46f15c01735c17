/**
 * The contrastive loss of SimCLR (Chen et al. 2020), NT-Xent ("normalized temperature-scaled
 * cross-entropy", the InfoNCE form): two augmented views of each of N examples are embedded; for
 * every one of the 2N embeddings the other view of the same example is the positive and the
 * 2N - 2 embeddings of the other examples are the negatives. Composed of ops, so autograd gives
 * its gradient.
 */

import { tidy } from './engine.js';
import type { Device, Tensor } from './tensor.js';
import { eye, tensor } from './ops/creation.js';
import { div, maximum, mul, sqrt, square, sub } from './ops/elementwise.js';
import { matmul } from './ops/matmul.js';
import { sum } from './ops/reduce.js';
import { concat } from './ops/shape.js';
import { crossEntropy } from './losses.js';

/** Options of the NT-Xent contrastive loss: how sharply the softmax separates positives from negatives. */
export interface NtXentOptions {
  /** Divides the cosine similarities before the softmax (SimCLR: 0.1-0.5; default 0.5). */
  temperature?: number;
}

/** Embeddings of both views side by side, or an error naming ntXent with the shapes and dtypes. */
function checkViews(z1: Tensor, z2: Tensor): void {
  const describe = (t: Tensor) => `[${t.shape.join(', ')}] ${t.dtype}`;
  if (z1.shape.length !== 2 || z1.dtype !== 'float32' || z2.dtype !== 'float32' || z1.shape.join() !== z2.shape.join()) {
    throw new Error(`ntXent: expected two float32 embeddings [batch, dim] of one shape (view 1 and view 2 of each example), got z1 ${describe(z1)} and z2 ${describe(z2)}`);
  }
  if ((z1.shape[0] ?? 0) < 2) throw new Error(`ntXent: needs at least 2 examples per batch (the others are the negatives), got z1 ${describe(z1)}`);
}

function onDevice(t: Tensor, device: Device): Tensor {
  return t.device === device ? t : t.to(device);
}

/**
 * NT-Xent / InfoNCE loss of two views. z1, z2: [batch, dim] float32, row i of each embedding the
 * same example -> [] (mean over the 2·batch anchors). Embeddings are L2-normalized inside, so
 * the similarities are cosines in [-1/temperature, 1/temperature].
 */
export function ntXent(z1: Tensor, z2: Tensor, options: NtXentOptions = {}): Tensor {
  checkViews(z1, z2);
  const temperature = options.temperature ?? 0.5;
  if (!(temperature > 0) || !Number.isFinite(temperature)) throw new Error(`ntXent: temperature must be a positive number, got ${temperature}`);
  const n = z1.shape[0]!;
  return tidy(() => {
    const z = concat([z1, z2], 0); // [2N, D]
    // F.normalize's guard: a zero embedding is divided by 1e-12, not 0
    const unit = div(z, maximum(sqrt(sum(square(z), -1, true)), 1e-12));
    const similarity = div(matmul(unit, unit, false, true), temperature); // [2N, 2N]
    // An embedding is never its own candidate: its logit is pushed to a softmax weight of 0.
    // (eye and the targets are made on the CPU; they follow the embeddings to their device.)
    const logits = sub(similarity, mul(onDevice(eye(2 * n), z.device), 1e9));
    // Anchor i's positive is i + N (its other view), and i + N's is i.
    const positives = Int32Array.from({ length: 2 * n }, (_, i) => (i < n ? i + n : i - n));
    return crossEntropy(logits, onDevice(tensor(positives, [2 * n]), z.device));
  });
}
