/**
 * ONNX reductions (axes as an attribute before opset 18 — 13 for ReduceSum — and as an input
 * since), ArgMax/ArgMin, Softmax and LogSoftmax (with the flatten-to-2-D rule of opsets < 13).
 */

import { abs, log, mul, sqrt } from '../../ops/elementwise.js';
import { argmax, argmin, logSumExp, max, mean, min, sum } from '../../ops/reduce.js';
import { softmaxFor, viewsFor } from '../../ops/prepared.js';
import { reshape, unsqueeze } from '../../ops/shape.js';
import { tensor } from '../../ops/creation.js';
import type { Tensor } from '../../tensor.js';
import { axisOf, input, intValues, type Inputs, type OnnxNode, type OpImpl, type PrepareImpl } from '../node.js';
import { inFloat } from './numeric.js';

/** Product over axes: Kiln has no product kernel; computed on the host (not differentiable). */
function prod(x: Tensor, axes: number[], keepDims: boolean): Tensor {
  const data = x.dataSync();
  const shape = [...x.shape];
  const outShape = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const out = new Float32Array(outShape.reduce((a, b) => a * b, 1)).fill(1);
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const outStrides = outShape.map((_, i) => outShape.slice(i + 1).reduce((a, b) => a * b, 1));
  for (let flat = 0; flat < data.length; flat++) {
    let o = 0;
    for (let d = 0; d < shape.length; d++) if (!axes.includes(d)) o += Math.floor(flat / strides[d]) % shape[d] * outStrides[d];
    out[o] *= data[flat];
  }
  const result = tensor(out, outShape);
  return keepDims ? result : reshape(result, shape.filter((_, i) => !axes.includes(i)));
}

type Reducer = (x: Tensor, axes: number[], keepDims: boolean) => Tensor;

/**
 * The axes a reduction node reduces (normalized against `rank`), or 'none' when it reduces
 * nothing (no axes and noop_with_empty_axes). `axesInput`: the node's second input, read from
 * opset `axesInputSince` on (the attribute before).
 */
export function reductionAxes(node: OnnxNode, axesInput: Tensor | undefined, rank: number, axesInputSince: number): number[] | 'none' {
  const given = node.opset >= axesInputSince ? (axesInput === undefined ? undefined : intValues(axesInput)) : node.ints('axes');
  if (given === undefined || given.length === 0) return node.int('noop_with_empty_axes', 0) === 1 ? 'none' : [...Array(rank).keys()];
  return given.map((a) => axisOf(a, rank, node));
}

/** The opset from which ReduceMean takes its axes as an input. */
export const MEAN_AXES_INPUT_SINCE = 18;

function reduction(fn: Reducer, axesInputSince: number): OpImpl {
  return (inputs: Inputs, node: OnnxNode) => {
    const x = input(inputs, 0, node);
    const keepDims = node.int('keepdims', 1) === 1;
    const axes = reductionAxes(node, inputs[1], x.rank, axesInputSince);
    if (axes === 'none' || x.rank === 0) return [x];
    return [inFloat([x], (f) => fn(f, axes, keepDims))];
  };
}

function argReduction(fn: (x: Tensor, axis: number) => Tensor): OpImpl {
  return (inputs, node) => {
    const x = input(inputs, 0, node);
    if (node.int('select_last_index', 0) === 1) node.fail('select_last_index = 1 is not supported (Kiln returns the first extreme)');
    const axis = axisOf(node.int('axis', 0), x.rank, node);
    const r = fn(x.dtype === 'float32' ? x : x.cast('float32'), axis);
    return [node.int('keepdims', 1) === 1 ? unsqueeze(r, axis) : r];
  };
}

/**
 * Softmax or LogSoftmax (`logarithm`) resolved for inputs like these (../node.ts, Prepared): opsets < 13
 * flatten to [prod(dims < axis), prod(dims >= axis)] (default axis 1). The op runs it too.
 */
function softmaxPrepared(logarithm: boolean): PrepareImpl {
  return (inputs, node) => {
    const x = input(inputs, 0, node);
    if (node.opset >= 13) {
      const normalize = softmaxFor(axisOf(node.int('axis', -1), x.rank, node), logarithm);
      return (a) => [normalize(a[0]!)];
    }
    const axis = axisOf(node.int('axis', 1), x.rank, node);
    const outer = x.shape.slice(0, axis).reduce((p, q) => p * q, 1);
    const shape = [...x.shape];
    const flatten = viewsFor((impl, h) => [impl.reshape(h, [outer, -1])]);
    const unflatten = viewsFor((impl, h) => [impl.reshape(h, shape)]);
    const normalize = softmaxFor(1, logarithm);
    return (a) => {
      const [flat] = flatten(a[0]!);
      const y = normalize(flat);
      flat.dispose();
      try {
        return unflatten(y);
      } finally {
        y.dispose();
      }
    };
  };
}

/** A Softmax-like op run through its prepared form. */
const softmaxLike = (logarithm: boolean): OpImpl => {
  const prepare = softmaxPrepared(logarithm);
  return (inputs, node, context) => prepare(inputs, node, context)!(inputs);
};

export const reducePrepared: Record<string, PrepareImpl> = {
  Softmax: softmaxPrepared(false),
  LogSoftmax: softmaxPrepared(true),
};

export const reduceOps: Record<string, OpImpl> = {
  ReduceSum: reduction(sum, 13),
  ReduceMean: reduction(mean, MEAN_AXES_INPUT_SINCE),
  ReduceMax: reduction(max, 18),
  ReduceMin: reduction(min, 18),
  ReduceProd: reduction(prod, 18),
  ReduceL1: reduction((x, a, k) => sum(abs(x), a, k), 18),
  ReduceL2: reduction((x, a, k) => sqrt(sum(mul(x, x), a, k)), 18),
  ReduceSumSquare: reduction((x, a, k) => sum(mul(x, x), a, k), 18),
  ReduceLogSum: reduction((x, a, k) => log(sum(x, a, k)), 18),
  ReduceLogSumExp: reduction(logSumExp, 18),
  ArgMax: argReduction(argmax),
  ArgMin: argReduction(argmin),
  Softmax: softmaxLike(false),
  LogSoftmax: softmaxLike(true),
};
