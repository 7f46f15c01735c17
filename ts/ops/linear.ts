/**
 * The fully connected layer's product with its bias, one Rust call (crates/kiln-core/src/ops/linear.rs):
 * on the CPU the GEMM starts from the bias, so adding it costs no pass over the output.
 * nn.Linear and the ONNX importer's MatMul + Add and Gemm run on it.
 */

import { backend } from '../engine.js';
import { wrap, type Tensor } from '../tensor.js';
import { handleOf, optionalHandleOf } from './util.js';

/**
 * x · weightᵀ + bias, as PyTorch's `F.linear`. x: [..., inFeatures], weight: [outFeatures,
 * inFeatures] (any layout: a transposed view is read in place), bias: [outFeatures] or none
 * -> [..., outFeatures].
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const op = 'linear';
  const b = backend();
  const biasHandle = optionalHandleOf(bias, op, b, 'bias');
  return wrap(b.impl.linear(handleOf(x, op, b, 'x'), handleOf(weight, op, b, 'weight'), biasHandle), b);
}
