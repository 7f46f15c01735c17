/**
 * ONNX ops composed from several Kiln ops: losses as graph ops (NegativeLogLikelihoodLoss,
 * SoftmaxCrossEntropyLoss), GatherElements, CumSum (a matmul with a triangular matrix), Hardmax,
 * the further normalizations (Group, RMS, MeanVariance, Lp), hyperbolic functions, Swish, EyeLike.
 * Indices that select elements are read back and turned into flat positions on the host; the
 * values stay on the backend, so gradients reach the data inputs.
 */

import { tensor } from '../../ops/creation.js';
import { add, div, equal, exp, log, mul, neg, rsqrt, sigmoid, sqrt, sub, where } from '../../ops/elementwise.js';
import { matmul } from '../../ops/matmul.js';
import { argmax, logSoftmax, mean, sum, variance } from '../../ops/reduce.js';
import { gather, oneHot, permute, reshape } from '../../ops/shape.js';
import type { Tensor } from '../../tensor.js';
import { axisOf, input, intValues, type Inputs, type OnnxNode, type OpImpl } from '../node.js';
import { inFloat } from './numeric.js';

const stridesOf = (shape: readonly number[]): number[] => shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));

/** out[...i] = data[..., indices[...i] (at `axis`), ...]: a gather of the flattened data. */
function gatherElements(data: Tensor, indices: number[], indexShape: number[], axis: number): Tensor {
  const dataStrides = stridesOf(data.shape);
  const indexStrides = stridesOf(indexShape);
  const flat = new Int32Array(indices.length);
  for (let e = 0; e < indices.length; e++) {
    let position = 0;
    for (let d = 0; d < indexShape.length; d++) {
      const coordinate = Math.floor(e / indexStrides[d]) % indexShape[d];
      const at = d === axis ? (indices[e] < 0 ? indices[e] + data.shape[axis] : indices[e]) : coordinate;
      position += at * dataStrides[d];
    }
    flat[e] = position;
  }
  return reshape(gather(reshape(data, [-1]), tensor(flat, [flat.length], 'int32'), 0), indexShape);
}

/**
 * The negative log-likelihood of log-probabilities x [N, C, ...] at targets [N, ...], weighted
 * per class, ignoring `ignoreIndex`, reduced as ONNX says (mean divides by the summed weights).
 */
function nll(x: Tensor, targetTensor: Tensor, weight: Tensor | undefined, node: OnnxNode): Tensor {
  const targets = intValues(targetTensor);
  const ignore = node.int('ignore_index');
  const keep = targets.map((t) => (t === ignore ? 0 : 1));
  const safe = targets.map((t) => (t === ignore ? 0 : t));
  const targetShape = [...targetTensor.shape];
  // Picking x[n, t, d...]: the class axis 1 is where the target indexes.
  const picked = gatherElements(x, safe, [targetShape[0], 1, ...targetShape.slice(1)], 1);
  const perElement = reshape(picked, targetShape);
  const keepMask = tensor(Float32Array.from(keep), targetShape);
  const w = weight === undefined ? keepMask : mul(reshape(gather(weight, tensor(Int32Array.from(safe), [safe.length], 'int32'), 0), targetShape), keepMask);
  const loss = mul(neg(perElement), w);
  const reduction = node.string('reduction', 'mean');
  if (reduction === 'none') return loss;
  if (reduction === 'sum') return sum(loss);
  if (reduction !== 'mean') node.fail(`unknown reduction '${reduction}'`);
  return div(sum(loss), sum(w));
}

function cumSum(x: Tensor, axis: number, exclusive: boolean, reverse: boolean): Tensor {
  const n = x.shape[axis];
  const last = x.rank - 1;
  const perm = [...x.shape.keys()];
  [perm[axis], perm[last]] = [perm[last], perm[axis]];
  // y[..., i] = Σ_j x[..., j]·T[j, i]: T marks which j contribute to i.
  const t = new Float32Array(n * n);
  for (let j = 0; j < n; j++) for (let i = 0; i < n; i++) t[j * n + i] = (reverse ? (exclusive ? j > i : j >= i) : exclusive ? j < i : j <= i) ? 1 : 0;
  const moved = permute(x, perm);
  return permute(matmul(moved, tensor(t, [n, n])), perm);
}

/** Normalizes x over `axes` with the given eps: (x − mean)/√(var + eps). */
const standardize = (x: Tensor, axes: number[], eps: number): Tensor => mul(sub(x, mean(x, axes, true)), rsqrt(add(variance(x, axes, true), eps)));

const groupNormalizationOp: OpImpl = (inputs, node) => {
  const x = input(inputs, 0, node);
  const groups = node.int('num_groups') ?? node.fail('needs num_groups');
  const [n, c] = x.shape;
  const grouped = reshape(x, [n, groups, -1]);
  const normalized = reshape(standardize(grouped, [2], node.float('epsilon', 1e-5)), [...x.shape]);
  const scale = input(inputs, 1, node);
  const bias = input(inputs, 2, node);
  // Opset 18 gives one scale per group, 21 one per channel.
  const perChannel = (t: Tensor): Tensor => {
    const full = t.shape[0] === c ? t : reshape(gather(t, tensor(Int32Array.from({ length: c }, (_, i) => Math.floor(i / (c / groups))), [c], 'int32'), 0), [c]);
    return reshape(full, [c, ...Array(x.rank - 2).fill(1)]);
  };
  return [add(mul(normalized, perChannel(scale)), perChannel(bias))];
};

const rmsNormalizationOp: OpImpl = (inputs, node) => {
  const x = input(inputs, 0, node);
  const axis = axisOf(node.int('axis', -1), x.rank, node);
  const axes = Array.from({ length: x.rank - axis }, (_, i) => axis + i);
  const y = mul(x, rsqrt(add(mean(mul(x, x), axes, true), node.float('epsilon', 1e-5))));
  return [mul(y, input(inputs, 1, node))];
};

function hardmaxOp(inputs: Inputs, node: OnnxNode): Tensor[] {
  const x = input(inputs, 0, node);
  const axis = axisOf(node.int('axis', node.opset >= 13 ? -1 : 1), x.rank, node);
  if (node.opset < 13) {
    const outer = x.shape.slice(0, axis).reduce((a, b) => a * b, 1);
    const flat = reshape(x, [outer, -1]);
    return [reshape(oneHot(argmax(flat, 1), flat.shape[1]), [...x.shape])];
  }
  const hot = oneHot(argmax(x, axis), x.shape[axis]); // [..., D]: the axis moved last
  const perm = [...Array(x.rank - 1).keys()];
  perm.splice(axis, 0, x.rank - 1);
  return [permute(hot, perm)];
}

export const extraOps: Record<string, OpImpl> = {
  GatherElements: (inputs, node) => {
    const data = input(inputs, 0, node);
    const indices = input(inputs, 1, node);
    return [gatherElements(data, intValues(indices), [...indices.shape], axisOf(node.int('axis', 0), data.rank, node))];
  },
  NegativeLogLikelihoodLoss: (inputs, node) => [nll(input(inputs, 0, node), input(inputs, 1, node), inputs[2], node)],
  SoftmaxCrossEntropyLoss: (inputs, node) => {
    const logProb = logSoftmax(input(inputs, 0, node), 1);
    return [nll(logProb, input(inputs, 1, node), inputs[2], node), logProb];
  },
  CumSum: (inputs, node) => {
    const x = input(inputs, 0, node);
    const axis = axisOf(Number(input(inputs, 1, node).dataSync()[0]), x.rank, node);
    return [inFloat([x], (f) => cumSum(f, axis, node.int('exclusive', 0) === 1, node.int('reverse', 0) === 1))];
  },
  Hardmax: hardmaxOp,
  GroupNormalization: groupNormalizationOp,
  RMSNormalization: rmsNormalizationOp,
  MeanVarianceNormalization: (inputs, node) => {
    const x = input(inputs, 0, node);
    const axes = (node.ints('axes') ?? [0, 2, 3]).map((a) => axisOf(a, x.rank, node));
    return [div(sub(x, mean(x, axes, true)), add(sqrt(variance(x, axes, true)), 1e-9))];
  },
  LpNormalization: (inputs, node) => {
    const x = input(inputs, 0, node);
    const axis = axisOf(node.int('axis', -1), x.rank, node);
    const p = node.int('p', 2);
    const norm = p === 1 ? sum(x.abs(), [axis], true) : sqrt(sum(mul(x, x), [axis], true));
    // A zero vector stays zero (0/0 would be NaN).
    return [div(x, where(equal(norm, 0), 1, norm))];
  },
  Sinh: (inputs, node) => {
    const x = input(inputs, 0, node);
    return [mul(sub(exp(x), exp(neg(x))), 0.5)];
  },
  Cosh: (inputs, node) => {
    const x = input(inputs, 0, node);
    return [mul(add(exp(x), exp(neg(x))), 0.5)];
  },
  Asinh: (inputs, node) => {
    const x = input(inputs, 0, node);
    return [log(add(x, sqrt(add(mul(x, x), 1))))];
  },
  Acosh: (inputs, node) => {
    const x = input(inputs, 0, node);
    return [log(add(x, sqrt(sub(mul(x, x), 1))))];
  },
  Atanh: (inputs, node) => {
    const x = input(inputs, 0, node);
    return [mul(log(div(add(x, 1), sub(1, x))), 0.5)];
  },
  Swish: (inputs, node) => {
    const x = input(inputs, 0, node);
    return [mul(x, sigmoid(mul(x, node.float('alpha', 1))))];
  },
  EyeLike: (inputs, node) => {
    const x = input(inputs, 0, node);
    const [rows, cols] = x.shape;
    const k = node.int('k', 0);
    const ones = new Float32Array(rows * cols);
    for (let i = 0; i < rows; i++) if (i + k >= 0 && i + k < cols) ones[i * cols + i + k] = 1;
    const wide = tensor(ones, [rows, cols]);
    const dtype = node.int('dtype');
    return [dtype === undefined ? (x.dtype === 'float32' ? wide : wide.cast(x.dtype)) : [1, 10, 11, 16].includes(dtype) ? wide : wide.cast(dtype === 9 ? 'bool' : 'int32')];
  },
};
