/** ONNX MatMul and Gemm on Kiln's matmul (batch dims broadcast, transposes without copies). */

import { add, mul } from '../../ops/elementwise.js';
import { matmul } from '../../ops/matmul.js';
import { input, type OpImpl } from '../node.js';
import { inFloat } from './numeric.js';

export const linearOps: Record<string, OpImpl> = {
  MatMul: (inputs, node) => [inFloat([input(inputs, 0, node), input(inputs, 1, node)], (a, b) => matmul(a, b))],
  /** Y = alpha · op(A) · op(B) + beta · C, op = transpose when transA / transB. A: [M, K], B: [K, N], C broadcasts to [M, N]. */
  Gemm: (inputs, node) => {
    const a = input(inputs, 0, node);
    const b = input(inputs, 1, node);
    if (a.rank !== 2 || b.rank !== 2) node.fail(`A and B must be matrices, got [${a.shape.join(', ')}] and [${b.shape.join(', ')}]`);
    const alpha = node.float('alpha', 1);
    const beta = node.float('beta', 1);
    let y = matmul(a, b, node.int('transA', 0) === 1, node.int('transB', 0) === 1);
    if (alpha !== 1) y = mul(y, alpha);
    const c = inputs[2];
    if (c !== undefined && beta !== 0) y = add(y, beta === 1 ? c : mul(c, beta));
    return [y];
  },
};
