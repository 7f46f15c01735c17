/** Matrix multiplication. */

import { backend } from '../engine.js';
import { wrap, type Tensor } from '../tensor.js';
import { handleOf } from './util.js';

/**
 * a @ b. a: [...batchA, M, K] (or [K]), b: [...batchB, K, N] (or [K]) -> [...batch, M, N] with
 * the batch dims broadcast. transposeA/transposeB use the operand's last two dims swapped,
 * without a copy.
 */
export function matmul(a: Tensor, b: Tensor, transposeA = false, transposeB = false): Tensor {
  const be = backend();
  return wrap(be.impl.matmul(handleOf(a, 'matmul', be, 'a'), handleOf(b, 'matmul', be, 'b'), transposeA, transposeB), be);
}
