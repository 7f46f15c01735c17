/**
 * Integer arithmetic for ONNX graphs. Kiln's arithmetic kernels are float32; ONNX also does
 * arithmetic on int64 (shape computations: Shape -> Gather -> Mul -> Concat -> Reshape). Such
 * values are small, so they are computed in float32 (exact below 2^24) and cast back.
 */

import { cast } from '../../ops/shape.js';
import type { Tensor } from '../../tensor.js';

/** `t` as float32 (itself when it already is). */
export function asFloat(t: Tensor): Tensor {
  return t.dtype === 'float32' ? t : cast(t, 'float32');
}

/**
 * Applies `fn` to float32 views of the operands and casts the result back to int32 when the
 * first operand is an integer tensor (the ONNX result type). Division truncates toward zero
 * (the cast), as onnxruntime's integer Div does.
 */
export function inFloat(operands: Tensor[], fn: (...xs: Tensor[]) => Tensor): Tensor {
  const result = fn(...operands.map(asFloat));
  const type = operands[0].dtype;
  return type === 'float32' || result.dtype !== 'float32' ? result : cast(result, type === 'bool' ? 'bool' : 'int32');
}
