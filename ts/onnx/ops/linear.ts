/**
 * ONNX MatMul and Gemm on Kiln's matmul (batch dims broadcast, transposes without copies); a Gemm
 * that is a Linear layer (alpha = beta = 1, a [N] bias) on kiln.linear.
 */

import { add, mul } from '../../ops/elementwise.js';
import { linear } from '../../ops/linear.js';
import { matmul } from '../../ops/matmul.js';
import { transpose } from '../../ops/shape.js';
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
    const [transA, transB] = [node.int('transA', 0) === 1, node.int('transB', 0) === 1];
    const c = inputs[2];
    // torch.onnx.export's nn.Linear: Gemm(x, W, b, transB=1), one kiln.linear call (the GEMM starts from b).
    const n = transB ? b.shape[0] : b.shape[1];
    const plainBias = c === undefined || (c.dtype === 'float32' && c.rank === 1 && c.shape[0] === n);
    if (alpha === 1 && beta === 1 && !transA && plainBias && a.dtype === 'float32' && b.dtype === 'float32') {
      return [linear(a, transB ? b : transpose(b), c)];
    }
    let y = matmul(a, b, transA, transB);
    if (alpha !== 1) y = mul(y, alpha);
    if (c !== undefined && beta !== 0) y = add(y, beta === 1 ? c : mul(c, beta));
    return [y];
  },
};
