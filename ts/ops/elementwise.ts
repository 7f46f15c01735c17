/**
 * Elementwise ops. Unary ops keep the shape; binary ops broadcast their operands (NumPy rules)
 * and accept plain numbers as float32 scalars. Comparisons return bool masks.
 */

import { backend } from '../engine.js';
import { Tensor, wrap, type TensorLike } from '../tensor.js';
import { handleOf, withOperands } from './util.js';

function unaryOp(name: string, x: Tensor, alpha = 0): Tensor {
  const b = backend();
  return wrap(b.impl.unary(b.codes.unary[name], handleOf(x, name, b), alpha), b);
}

function binaryOp(name: string, x: TensorLike, y: TensorLike): Tensor {
  const b = backend();
  const code = b.codes.binary[name];
  // The common case (two live tensors on the active backend) avoids every allocation but the
  // result; anything else goes through withOperands, whose errors name the op and the argument.
  if (x instanceof Tensor && y instanceof Tensor && x.backend === b && y.backend === b && !x.isDisposed && !y.isDisposed) {
    return wrap(b.impl.binary(code, x.handle, y.handle), b);
  }
  return withOperands(name, [x, y], ['a', 'b'], ([hx, hy]) => b.impl.binary(code, hx, hy));
}

/** -x. any shape -> same shape */
export const neg = (x: Tensor): Tensor => unaryOp('neg', x);
/** |x|. any shape -> same shape */
export const abs = (x: Tensor): Tensor => unaryOp('abs', x);
/** e^x. any shape -> same shape */
export const exp = (x: Tensor): Tensor => unaryOp('exp', x);
/** Natural log (NaN below 0, -Infinity at 0). any shape -> same shape */
export const log = (x: Tensor): Tensor => unaryOp('log', x);
/** √x. any shape -> same shape */
export const sqrt = (x: Tensor): Tensor => unaryOp('sqrt', x);
/** 1/√x. any shape -> same shape */
export const rsqrt = (x: Tensor): Tensor => unaryOp('rsqrt', x);
/** x². any shape -> same shape */
export const square = (x: Tensor): Tensor => unaryOp('square', x);
/** sin x. any shape -> same shape */
export const sin = (x: Tensor): Tensor => unaryOp('sin', x);
/** cos x. any shape -> same shape */
export const cos = (x: Tensor): Tensor => unaryOp('cos', x);
/** tanh x. any shape -> same shape */
export const tanh = (x: Tensor): Tensor => unaryOp('tanh', x);
/** 1 / (1 + e^-x). any shape -> same shape */
export const sigmoid = (x: Tensor): Tensor => unaryOp('sigmoid', x);
/** max(x, 0) (NaN stays NaN). any shape -> same shape */
export const relu = (x: Tensor): Tensor => unaryOp('relu', x);
/** x > 0 ? x : alpha·x; alpha defaults to 0.01 as in PyTorch (tfjs uses 0.2). any shape -> same shape */
export const leakyRelu = (x: Tensor, alpha = 0.01): Tensor => unaryOp('leakyRelu', x, alpha);
/** x > 0 ? x : alpha·(e^x - 1), alpha = 1 by default. any shape -> same shape */
export const elu = (x: Tensor, alpha = 1): Tensor => unaryOp('elu', x, alpha);
/** GELU, exact erf form (PyTorch's default). any shape -> same shape */
export const gelu = (x: Tensor): Tensor => unaryOp('gelu', x);
/** log(1 + e^x), computed without overflow. any shape -> same shape */
export const softplus = (x: Tensor): Tensor => unaryOp('softplus', x);
/** x / (1 + |x|): a bounded squashing in (-1, 1), ±1 at ±inf; gradient 1 / (1 + |x|)². any shape -> same shape */
export const softsign = (x: Tensor): Tensor => unaryOp('softsign', x);
/** Mish, x·tanh(softplus(x)) (Misra 2019; PyTorch's `mish`), fused in one pass; 0 at -inf. any shape -> same shape */
export const mish = (x: Tensor): Tensor => unaryOp('mish', x);

/** a + b. shapes broadcast -> broadcast shape */
export const add = (a: TensorLike, b: TensorLike): Tensor => binaryOp('add', a, b);
/** a - b. shapes broadcast -> broadcast shape */
export const sub = (a: TensorLike, b: TensorLike): Tensor => binaryOp('sub', a, b);
/** a · b. shapes broadcast -> broadcast shape */
export const mul = (a: TensorLike, b: TensorLike): Tensor => binaryOp('mul', a, b);
/** a / b. shapes broadcast -> broadcast shape */
export const div = (a: TensorLike, b: TensorLike): Tensor => binaryOp('div', a, b);
/** a ^ b. shapes broadcast -> broadcast shape */
export const pow = (a: TensorLike, b: TensorLike): Tensor => binaryOp('pow', a, b);
/** Elementwise max (NaN propagates). shapes broadcast -> broadcast shape */
export const maximum = (a: TensorLike, b: TensorLike): Tensor => binaryOp('maximum', a, b);
/** Elementwise min (NaN propagates). shapes broadcast -> broadcast shape */
export const minimum = (a: TensorLike, b: TensorLike): Tensor => binaryOp('minimum', a, b);
/** a == b as a bool mask. shapes broadcast -> broadcast shape */
export const equal = (a: TensorLike, b: TensorLike): Tensor => binaryOp('equal', a, b);
/** a != b as a bool mask. shapes broadcast -> broadcast shape */
export const notEqual = (a: TensorLike, b: TensorLike): Tensor => binaryOp('notEqual', a, b);
/** a < b as a bool mask. shapes broadcast -> broadcast shape */
export const less = (a: TensorLike, b: TensorLike): Tensor => binaryOp('less', a, b);
/** a <= b as a bool mask. shapes broadcast -> broadcast shape */
export const lessEqual = (a: TensorLike, b: TensorLike): Tensor => binaryOp('lessEqual', a, b);
/** a > b as a bool mask. shapes broadcast -> broadcast shape */
export const greater = (a: TensorLike, b: TensorLike): Tensor => binaryOp('greater', a, b);
/** a >= b as a bool mask. shapes broadcast -> broadcast shape */
export const greaterEqual = (a: TensorLike, b: TensorLike): Tensor => binaryOp('greaterEqual', a, b);

/** cond ? a : b elementwise. cond: bool; all three broadcast -> broadcast shape, float32 */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  const be = backend();
  return withOperands('where', [cond, a, b], ['cond', 'a', 'b'], ([hc, ha, hb]) => be.impl.where(hc, ha, hb));
}
