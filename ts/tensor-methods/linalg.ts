/** Linear algebra as tensor methods: `x.matmul(w)` (body in ops/matmul.ts). */

import { attachMethods } from './attach.js';
import * as linalg from '../ops/matmul.js';

declare module '../tensor.js' {
  interface Tensor {
    /** Matrix product: [..., m, k] x [..., k, n] -> [..., m, n] (batch axes broadcast); the flags transpose the last two axes of either side first. */
    matmul(b: Tensor, transposeA?: boolean, transposeB?: boolean): Tensor;
  }
}

attachMethods({
  matmul(b, transposeA, transposeB) { return linalg.matmul(this, b, transposeA, transposeB); },
});
