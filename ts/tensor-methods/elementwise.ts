/** Elementwise math and comparisons as tensor methods: `x.relu()`, `x.add(b)` (bodies in ops/elementwise.ts). */

import { attachMethods } from './attach.js';
import * as elementwise from '../ops/elementwise.js';

declare module '../tensor.js' {
  interface Tensor {
    /** Elementwise -x (the same shape). */
    neg(): Tensor;
    /** Elementwise |x|. */
    abs(): Tensor;
    /** Elementwise e^x. */
    exp(): Tensor;
    /** Elementwise natural logarithm (-Infinity at 0, NaN below). */
    log(): Tensor;
    /** Elementwise square root. */
    sqrt(): Tensor;
    /** Elementwise 1 / sqrt(x). */
    rsqrt(): Tensor;
    /** Elementwise x². */
    square(): Tensor;
    /** Elementwise sine (radians). */
    sin(): Tensor;
    /** Elementwise cosine (radians). */
    cos(): Tensor;
    /** Elementwise hyperbolic tangent. */
    tanh(): Tensor;
    /** Elementwise logistic function 1 / (1 + e^-x). */
    sigmoid(): Tensor;
    /** Elementwise max(x, 0). */
    relu(): Tensor;
    /** Elementwise x for x > 0, else alpha * x (alpha default 0.01). */
    leakyRelu(alpha?: number): Tensor;
    /** Elementwise x for x > 0, else alpha * (e^x - 1) (alpha default 1). */
    elu(alpha?: number): Tensor;
    /** Elementwise GELU, x * Φ(x), in the exact erf form (PyTorch's default). */
    gelu(): Tensor;
    /** Elementwise log(1 + e^x), computed without overflow. */
    softplus(): Tensor;
    /** Elementwise x / (1 + |x|). */
    softsign(): Tensor;
    /** Elementwise Mish, x * tanh(softplus(x)). */
    mish(): Tensor;
    /** this + b, broadcasting both shapes (NumPy rules); b may be a number. */
    add(b: TensorLike): Tensor;
    /** this - b, broadcasting. */
    sub(b: TensorLike): Tensor;
    /** this * b elementwise, broadcasting. */
    mul(b: TensorLike): Tensor;
    /** this / b elementwise, broadcasting. */
    div(b: TensorLike): Tensor;
    /** this ** b elementwise, broadcasting. */
    pow(b: TensorLike): Tensor;
    /** The larger of this and b elementwise, broadcasting. */
    maximum(b: TensorLike): Tensor;
    /** The smaller of this and b elementwise, broadcasting. */
    minimum(b: TensorLike): Tensor;
    /** this == b elementwise, broadcasting: a bool tensor. */
    equal(b: TensorLike): Tensor;
    /** this != b elementwise, broadcasting: a bool tensor. */
    notEqual(b: TensorLike): Tensor;
    /** this < b elementwise, broadcasting: a bool tensor. */
    less(b: TensorLike): Tensor;
    /** this <= b elementwise, broadcasting: a bool tensor. */
    lessEqual(b: TensorLike): Tensor;
    /** this > b elementwise, broadcasting: a bool tensor. */
    greater(b: TensorLike): Tensor;
    /** this >= b elementwise, broadcasting: a bool tensor. */
    greaterEqual(b: TensorLike): Tensor;
    /** `this ? a : b` elementwise, with this tensor as the bool condition. */
    where(a: TensorLike, b: TensorLike): Tensor;
  }
}

attachMethods({
  neg() { return elementwise.neg(this); },
  abs() { return elementwise.abs(this); },
  exp() { return elementwise.exp(this); },
  log() { return elementwise.log(this); },
  sqrt() { return elementwise.sqrt(this); },
  rsqrt() { return elementwise.rsqrt(this); },
  square() { return elementwise.square(this); },
  sin() { return elementwise.sin(this); },
  cos() { return elementwise.cos(this); },
  tanh() { return elementwise.tanh(this); },
  sigmoid() { return elementwise.sigmoid(this); },
  relu() { return elementwise.relu(this); },
  leakyRelu(alpha) { return elementwise.leakyRelu(this, alpha); },
  elu(alpha) { return elementwise.elu(this, alpha); },
  gelu() { return elementwise.gelu(this); },
  softplus() { return elementwise.softplus(this); },
  softsign() { return elementwise.softsign(this); },
  mish() { return elementwise.mish(this); },
  add(b) { return elementwise.add(this, b); },
  sub(b) { return elementwise.sub(this, b); },
  mul(b) { return elementwise.mul(this, b); },
  div(b) { return elementwise.div(this, b); },
  pow(b) { return elementwise.pow(this, b); },
  maximum(b) { return elementwise.maximum(this, b); },
  minimum(b) { return elementwise.minimum(this, b); },
  equal(b) { return elementwise.equal(this, b); },
  notEqual(b) { return elementwise.notEqual(this, b); },
  less(b) { return elementwise.less(this, b); },
  lessEqual(b) { return elementwise.lessEqual(this, b); },
  greater(b) { return elementwise.greater(this, b); },
  greaterEqual(b) { return elementwise.greaterEqual(this, b); },
  where(a, b) { return elementwise.where(this, a, b); },
});
