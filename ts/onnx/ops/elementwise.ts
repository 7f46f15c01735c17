/**
 * ONNX's elementwise ops on Kiln's: arithmetic (broadcasting as NumPy, which is ONNX's rule
 * since opset 7), comparisons, logic, activations, and the rounding family composed from casts.
 */

import { abs, add, cos, div, elu, equal, exp, gelu, greater, greaterEqual, leakyRelu, less, lessEqual, log, maximum, minimum, mul, neg, notEqual, pow, relu, sigmoid, sin, softplus, sqrt, sub, tanh, where } from '../../ops/elementwise.js';
import { cast, reshape } from '../../ops/shape.js';
import type { Tensor } from '../../tensor.js';
import { tensor } from '../../ops/creation.js';
import { ONNX_TYPE } from '../tensors.js';
import { input, type Inputs, type OnnxNode, type OpImpl } from '../node.js';
import { asFloat, inFloat } from './numeric.js';

type Unary = (x: Tensor, node: OnnxNode) => Tensor;

/** An op of one input and one output, applied in float32 (integers are cast and cast back). */
const unary = (fn: Unary): OpImpl => (inputs, node) => [inFloat([input(inputs, 0, node)], (x) => fn(x, node))];

/** A binary arithmetic op; integer operands compute in float32 and the result is cast back. */
const binary = (fn: (a: Tensor, b: Tensor) => Tensor): OpImpl => (inputs, node) => [inFloat([input(inputs, 0, node), input(inputs, 1, node)], fn)];

/** A variadic op (Sum, Max, Min, Mean) folding its inputs left to right. */
const variadic = (fn: (a: Tensor, b: Tensor) => Tensor, finish?: (t: Tensor, n: number) => Tensor): OpImpl => (inputs, node) => {
  const xs = inputs.filter((t): t is Tensor => t !== undefined);
  if (xs.length === 0) node.fail('expects at least one input');
  const folded = inFloat(xs, (...fs) => {
    const total = fs.slice(1).reduce(fn, fs[0]);
    return finish ? finish(total, fs.length) : total;
  });
  return [folded];
};

/** A comparison; Kiln compares float32 and int32 directly, bools are compared as numbers. */
const compare = (fn: (a: Tensor, b: Tensor) => Tensor): OpImpl => (inputs, node) => {
  let a = input(inputs, 0, node);
  let b = input(inputs, 1, node);
  if (a.dtype !== b.dtype || a.dtype === 'bool') [a, b] = [asFloat(a), asFloat(b)];
  return [fn(a, b)];
};

/** A logical op on bools (as 0/1 floats). */
const logical = (fn: (a: Tensor, b: Tensor) => Tensor): OpImpl => (inputs, node) => [fn(asFloat(input(inputs, 0, node)), asFloat(input(inputs, 1, node)))];

/** Values at or beyond 2^23 in magnitude are already whole in float32; the casts below need |x| < 2^31. */
const WHOLE = 2 ** 23;
const trunc = (x: Tensor): Tensor => cast(cast(x, 'int32'), 'float32');
const keepLarge = (x: Tensor, rounded: Tensor): Tensor => where(less(abs(x), WHOLE), rounded, x);
const floorOf = (x: Tensor): Tensor => {
  const t = trunc(x);
  return keepLarge(x, sub(t, cast(greater(t, x), 'float32')));
};
const ceilOf = (x: Tensor): Tensor => {
  const t = trunc(x);
  return keepLarge(x, add(t, cast(less(t, x), 'float32')));
};
/** Round half to even (ONNX Round, numpy.round): floor(x + 0.5), minus one on an odd tie. */
const roundOf = (x: Tensor): Tensor => {
  const r = floorOf(add(x, 0.5));
  const tie = equal(sub(r, x), 0.5);
  const odd = equal(sub(r, mul(floorOf(mul(r, 0.5)), 2)), 1);
  return keepLarge(x, sub(r, cast(mul(cast(tie, 'float32'), cast(odd, 'float32')), 'float32')));
};

/**
 * erf(x) by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7, under float32's resolution
 * near 1): Kiln has no erf kernel, and this composition is differentiable.
 */
function erfOf(x: Tensor): Tensor {
  const a = abs(x);
  const t = div(1, add(mul(a, 0.3275911), 1));
  const poly = mul(t, add(mul(t, add(mul(t, add(mul(t, add(mul(t, 1.061405429), -1.453152027)), 1.421413741)), -0.284496736)), 0.254829592));
  const y = sub(1, mul(poly, exp(neg(mul(a, a)))));
  return mul(y, sub(cast(greaterEqual(x, 0), 'float32'), cast(less(x, 0), 'float32')));
}

const signOf = (x: Tensor): Tensor => sub(cast(greater(x, 0), 'float32'), cast(less(x, 0), 'float32'));

function clipOp(inputs: Inputs, node: OnnxNode): Tensor[] {
  const x = input(inputs, 0, node);
  // Before opset 11 the bounds are attributes; since, optional inputs.
  const low: Tensor | number | undefined = node.opset < 11 ? node.float('min', -Infinity) : inputs[1];
  const high: Tensor | number | undefined = node.opset < 11 ? node.float('max', Infinity) : inputs[2];
  return [inFloat([x], (f) => {
    let y = f;
    if (low !== undefined && low !== -Infinity) y = maximum(y, typeof low === 'number' ? low : asFloat(low));
    if (high !== undefined && high !== Infinity) y = minimum(y, typeof high === 'number' ? high : asFloat(high));
    return y;
  })];
}

function modOp(inputs: Inputs, node: OnnxNode): Tensor[] {
  const fmod = node.int('fmod', 0) === 1;
  return [inFloat([input(inputs, 0, node), input(inputs, 1, node)], (a, b) => {
    const q = div(a, b);
    // fmod: the remainder has the dividend's sign (C); otherwise the divisor's (Python).
    const whole = fmod ? keepLarge(q, trunc(q)) : floorOf(q);
    return sub(a, mul(whole, b));
  })];
}

const hardSigmoid = (x: Tensor, alpha: number, beta: number): Tensor => minimum(maximum(add(mul(x, alpha), beta), 0), 1);

function castOp(inputs: Inputs, node: OnnxNode, to: number | undefined): Tensor[] {
  const x = input(inputs, 0, node);
  if (to === undefined) node.fail('needs the attribute "to"');
  const target = to === 9 ? 'bool' : [1, 10, 11, 16].includes(to) ? 'float32' : [2, 3, 4, 5, 6, 7, 12, 13].includes(to) ? 'int32' : undefined;
  if (target === undefined) node.fail(`cannot cast to ONNX type ${to} (Kiln has float32, int32 and bool)`);
  const y = x.dtype === target ? x : cast(x, target);
  // float16 / bfloat16 have no Kiln dtype: the values are rounded to that precision and kept in
  // float32 (on the host, so this cast does not pass gradients).
  if (to === ONNX_TYPE.FLOAT16 || to === ONNX_TYPE.BFLOAT16) {
    const round = to === ONNX_TYPE.FLOAT16 ? roundToHalf : roundToBfloat16;
    return [tensor(Float32Array.from(y.dataSync(), round), [...y.shape])];
  }
  return [y];
}

/** Nearest-even rounding of `x` to a multiple of `quantum`. */
function roundEven(x: number, quantum: number): number {
  const r = x / quantum;
  const f = Math.floor(r);
  const d = r - f;
  return (d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f) * quantum;
}

/** x rounded to the nearest float16 (IEEE binary16: 10 fraction bits, subnormals from 2^-24). */
function roundToHalf(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const exponent = Math.max(Math.floor(Math.log2(Math.abs(x))), -14);
  const y = roundEven(x, 2 ** (exponent - 10));
  return Math.abs(y) >= 65520 ? Math.sign(y) * Infinity : y;
}

/** x rounded to the nearest bfloat16 (float32's exponent, 7 fraction bits). */
function roundToBfloat16(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const exponent = Math.max(Math.floor(Math.log2(Math.abs(x))), -126);
  return Math.fround(roundEven(x, 2 ** (exponent - 7)));
}

export const elementwiseOps: Record<string, OpImpl> = {
  Add: binary(add),
  Sub: binary(sub),
  Mul: binary(mul),
  Div: binary(div),
  Pow: (inputs, node) => [inFloat([input(inputs, 0, node)], (x) => pow(x, asFloat(input(inputs, 1, node))))],
  Mod: modOp,
  Sum: variadic(add),
  Mean: variadic(add, (t, n) => div(t, n)),
  Max: variadic(maximum),
  Min: variadic(minimum),
  Equal: compare(equal),
  Less: compare(less),
  LessOrEqual: compare(lessEqual),
  Greater: compare(greater),
  GreaterOrEqual: compare(greaterEqual),
  Not: (inputs, node) => [equal(asFloat(input(inputs, 0, node)), 0)],
  And: logical((a, b) => notEqual(mul(a, b), 0)),
  Or: logical((a, b) => notEqual(add(a, b), 0)),
  Xor: logical(notEqual),
  Where: (inputs, node) => {
    const cond = input(inputs, 0, node);
    return [inFloat([input(inputs, 1, node), input(inputs, 2, node)], (a, b) => where(cond.dtype === 'bool' ? cond : notEqual(asFloat(cond), 0), a, b))];
  },
  IsNaN: (inputs, node) => {
    const x = asFloat(input(inputs, 0, node));
    return [notEqual(x, x)];
  },
  IsInf: (inputs, node) => {
    const x = asFloat(input(inputs, 0, node));
    const pos = node.int('detect_positive', 1) === 1;
    const negative = node.int('detect_negative', 1) === 1;
    if (pos && negative) return [equal(abs(x), Infinity)];
    if (pos) return [equal(x, Infinity)];
    return [negative ? equal(x, -Infinity) : less(x, -Infinity)]; // neither: all false
  },
  Neg: unary(neg),
  Abs: unary(abs),
  Exp: unary(exp),
  Log: unary(log),
  Sqrt: unary(sqrt),
  Reciprocal: unary((x) => div(1, x)),
  Sin: unary(sin),
  Cos: unary(cos),
  Tan: unary((x) => div(sin(x), cos(x))),
  Tanh: unary(tanh),
  Sigmoid: unary(sigmoid),
  Relu: unary(relu),
  LeakyRelu: unary((x, n) => leakyRelu(x, n.float('alpha', 0.01))),
  Elu: unary((x, n) => elu(x, n.float('alpha', 1))),
  Selu: unary((x, n) => mul(elu(x, n.float('alpha', 1.67326319217681884765625)), n.float('gamma', 1.05070102214813232421875))),
  Celu: unary((x, n) => {
    const alpha = n.float('alpha', 1);
    return mul(elu(div(x, alpha), 1), alpha);
  }),
  PRelu: (inputs, node) => {
    const x = input(inputs, 0, node);
    let slope = input(inputs, 1, node);
    // Before opset 7 a 1-D slope of C entries applies per channel (axis 1), not to the last axis.
    if (slope.rank === 1 && x.rank > 2 && slope.shape[0] === x.shape[1] && slope.shape[0] !== x.shape[x.rank - 1]) {
      slope = reshape(slope, [slope.shape[0], ...Array(x.rank - 2).fill(1)]);
    }
    return [where(less(x, 0), mul(x, slope), x)];
  },
  ThresholdedRelu: unary((x, n) => where(greater(x, n.float('alpha', 1)), x, 0)),
  HardSigmoid: unary((x, n) => hardSigmoid(x, n.float('alpha', 0.2), n.float('beta', 0.5))),
  HardSwish: unary((x) => mul(x, hardSigmoid(x, 1 / 6, 0.5))),
  Softplus: unary(softplus),
  Softsign: unary((x) => div(x, add(abs(x), 1))),
  Mish: unary((x) => mul(x, tanh(softplus(x)))),
  Gelu: unary((x, n) => {
    if (n.string('approximate', 'none') === 'tanh') {
      const inner = mul(add(x, mul(pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
      return mul(mul(x, 0.5), add(tanh(inner), 1));
    }
    return gelu(x);
  }),
  Erf: unary(erfOf),
  Floor: unary(floorOf),
  Ceil: unary(ceilOf),
  Round: unary(roundOf),
  Sign: unary(signOf),
  Clip: clipOp,
  Identity: (inputs, node) => [input(inputs, 0, node)],
  Cast: (inputs, node) => castOp(inputs, node, node.int('to')),
  CastLike: (inputs, node) => {
    const like = input(inputs, 1, node);
    return castOp(inputs, node, like.dtype === 'bool' ? 9 : like.dtype === 'float32' ? 1 : 7);
  },
};
