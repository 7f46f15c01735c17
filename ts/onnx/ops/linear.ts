/**
 * ONNX MatMul and Gemm on Kiln's matmul (batch dims broadcast, transposes without copies); a Gemm
 * that is a Linear layer (alpha = beta = 1, a [N] bias) on kiln.linear.
 */

import { add, mul } from '../../ops/elementwise.js';
import { linear } from '../../ops/linear.js';
import { linearFor } from '../../ops/prepared.js';
import { matmul } from '../../ops/matmul.js';
import { transpose } from '../../ops/shape.js';
import type { Tensor } from '../../tensor.js';
import { input, type Inputs, type OnnxNode, type OpImpl, type PrepareImpl } from '../node.js';
import { inFloat } from './numeric.js';

export const linearOps: Record<string, OpImpl> = {
  MatMul: (inputs, node) => [inFloat([input(inputs, 0, node), input(inputs, 1, node)], (a, b) => matmul(a, b))],
  /** Y = alpha · op(A) · op(B) + beta · C, op = transpose when transA / transB. A: [M, K], B: [K, N], C broadcasts to [M, N]. */
  Gemm: (inputs, node) => {
    const [a, b] = gemmOperands(inputs, node);
    const alpha = node.float('alpha', 1);
    const beta = node.float('beta', 1);
    const [transA, transB] = [node.int('transA', 0) === 1, node.int('transB', 0) === 1];
    const c = inputs[2];
    if (gemmIsLinear(inputs, node)) return [linear(a, transB ? b : transpose(b), c)];
    let y = matmul(a, b, transA, transB);
    if (alpha !== 1) y = mul(y, alpha);
    if (c !== undefined && beta !== 0) y = add(y, beta === 1 ? c : mul(c, beta));
    return [y];
  },
};

/** Gemm's A and B, matrices. */
function gemmOperands(inputs: Inputs, node: OnnxNode): [Tensor, Tensor] {
  const [a, b] = [input(inputs, 0, node), input(inputs, 1, node)];
  if (a.rank !== 2 || b.rank !== 2) node.fail(`A and B must be matrices, got [${a.shape.join(', ')}] and [${b.shape.join(', ')}]`);
  return [a, b];
}

/** Whether a Gemm is a Linear layer (torch.onnx.export's nn.Linear): one kiln.linear call, the GEMM starting from the bias. */
function gemmIsLinear(inputs: Inputs, node: OnnxNode): boolean {
  const [a, b] = gemmOperands(inputs, node);
  const c = inputs[2];
  const transB = node.int('transB', 0) === 1;
  const n = transB ? b.shape[0] : b.shape[1];
  const plainBias = c === undefined || (c.dtype === 'float32' && c.rank === 1 && c.shape[0] === n);
  return node.float('alpha', 1) === 1 && node.float('beta', 1) === 1 && node.int('transA', 0) === 0 && plainBias && a.dtype === 'float32' && b.dtype === 'float32';
}

/** Prepared forms (../node.ts, Prepared): Gemm(x, W, b, transB=1) as a Linear layer. */
export const linearPrepared: Record<string, PrepareImpl> = {
  Gemm: (inputs, node) => {
    if (!gemmIsLinear(inputs, node) || node.int('transB', 0) !== 1) return undefined;
    const product = linearFor();
    return (a) => [product(a[0]!, a[1]!, a[2])];
  },
};
