/**
 * The fully connected layer's product with its bias (and a residual), one Rust call
 * (crates/kiln-core/src/ops/linear.rs): on the CPU the GEMM starts from the bias plus the
 * residual, so adding them costs no pass over the output; under inference an activation is
 * applied to each block of the product as it is computed. nn.Linear and the ONNX importer's
 * MatMul + Add (+ a residual Add, or + GELU) and Gemm run on it.
 */

import { backend } from '../engine.js';
import { wrap, type Tensor } from '../tensor.js';
import { handleOf, optionalHandleOf } from './util.js';

/**
 * x · weightᵀ + bias (+ residual), as PyTorch's `F.linear` (plus a skip connection). x: [...,
 * inFeatures], weight: [outFeatures, inFeatures] (any layout: a transposed view is read in place),
 * bias: [outFeatures] or none, residual: the output's shape [..., outFeatures] or none -> [...,
 * outFeatures]. Gradients reach all four. `options.activation` (a unary op's name: 'gelu', 'relu',
 * ...; `alpha` its parameter, as for leakyRelu) is applied to the result: the same values and
 * gradients as calling it after, and without a gradient to record (noGrad, or no input that
 * requires one) the CPU applies it to each block of the product as it writes it.
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null, residual?: Tensor | null, options: { activation?: string; alpha?: number } = {}): Tensor {
  const op = 'linear';
  const b = backend();
  const biasHandle = optionalHandleOf(bias, op, b, 'bias');
  const residualHandle = optionalHandleOf(residual, op, b, 'residual');
  return wrap(b.impl.linear(handleOf(x, op, b, 'x'), handleOf(weight, op, b, 'weight'), biasHandle, residualHandle, options.activation, options.alpha ?? 0), b);
}
