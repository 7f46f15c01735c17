/**
 * One ONNX translation per Kiln backend op: while a model's forward pass is traced, every call
 * the ops make to the backend is turned into ONNX nodes here. Shapes are the traced ones (the
 * export is static: Reshape and Expand targets are constants). A backend op missing from this
 * table fails the export, naming it.
 */

import { ONNX_TYPE } from '../tensors.js';
import type { AttributeValue, GraphBuilder } from './graph-builder.js';
import type { ConvGeometry } from '../../backends/backend.js';

/** What an emitter may use: the graph, the ONNX name of a handle, and traced shapes. */
export interface EmitContext {
  g: GraphBuilder;
  /** The value name of a handle (a captured constant when the trace has not seen it). */
  name(h: number): string;
  /** Records that handle `h` now holds value `name`. */
  set(h: number, name: string): void;
  shape(h: number): number[];
  dtype(h: number): string;
  /** The op name of a family code (unary 11 -> 'relu'). */
  opName(family: string, code: number): string;
}

// The traced arguments are the backend's own (handles, numbers, arrays), typed per method there.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Emitter = (c: EmitContext, args: any[], result: any) => void;

const swapLast = (rank: number): number[] => [...Array(rank - 2).keys(), rank - 1, rank - 2];
const KILN_TO_ONNX_TYPE: Record<string, number> = { float32: ONNX_TYPE.FLOAT, int32: ONNX_TYPE.INT32, bool: ONNX_TYPE.BOOL, int8: ONNX_TYPE.INT8 };

/** Reshape to the traced output shape: how every view op (reshape, squeeze, unsqueeze) is written. */
const asReshape: Emitter = (c, [x], r) => c.set(r, c.g.op('Reshape', [c.name(x), c.g.ints(c.shape(r))]));
const identity: Emitter = (c, [x], r) => c.set(r, c.g.op('Identity', [c.name(x)]));

function unaryNode(c: EmitContext, op: string, x: string, alpha: number): string {
  const g = c.g;
  switch (op) {
    case 'rsqrt': return g.op('Reciprocal', [g.op('Sqrt', [x])]);
    case 'square': return g.op('Mul', [x, x]);
    case 'leakyRelu': return g.op('LeakyRelu', [x], { alpha: { float: alpha } });
    case 'elu': return g.op('Elu', [x], { alpha: { float: alpha } });
    // Gelu enters ONNX at opset 20; the exact erf form keeps the file readable by older runtimes.
    case 'gelu': return g.op('Mul', [g.op('Mul', [x, g.floats([0.5], [])]), g.op('Add', [g.op('Erf', [g.op('Div', [x, g.floats([Math.SQRT2], [])])]), g.floats([1], [])])]);
    default: {
      const names: Record<string, string> = { neg: 'Neg', abs: 'Abs', exp: 'Exp', log: 'Log', sqrt: 'Sqrt', sin: 'Sin', cos: 'Cos', tanh: 'Tanh', sigmoid: 'Sigmoid', relu: 'Relu', softplus: 'Softplus' };
      if (!(op in names)) throw new Error(`onnx.save: the unary op '${op}' has no ONNX mapping`);
      return g.op(names[op], [x]);
    }
  }
}

const BINARY: Record<string, string> = { add: 'Add', sub: 'Sub', mul: 'Mul', div: 'Div', pow: 'Pow', maximum: 'Max', minimum: 'Min', equal: 'Equal', less: 'Less', lessEqual: 'LessOrEqual', greater: 'Greater', greaterEqual: 'GreaterOrEqual' };

function reduceNode(c: EmitContext, op: string, x: number, axesIn: number[], keepDims: boolean, correction: number): string {
  const g = c.g;
  const shape = c.shape(x);
  const axes = (axesIn.length === 0 ? [...shape.keys()] : axesIn).map((a) => (a < 0 ? a + shape.length : a));
  const keep = keepDims ? 1 : 0;
  const input = c.name(x);
  switch (op) {
    case 'sum': return g.op('ReduceSum', [input, g.ints(axes)], { keepdims: keep });
    case 'mean': return g.op('ReduceMean', [input], { axes, keepdims: keep });
    case 'max': return g.op('ReduceMax', [input], { axes, keepdims: keep });
    case 'min': return g.op('ReduceMin', [input], { axes, keepdims: keep });
    case 'logSumExp': return g.op('ReduceLogSumExp', [input], { axes, keepdims: keep });
    case 'variance': {
      const n = axes.reduce((p, a) => p * shape[a], 1);
      const centered = g.op('Sub', [input, g.op('ReduceMean', [input], { axes, keepdims: 1 })]);
      const meanSquare = g.op('ReduceMean', [g.op('Mul', [centered, centered])], { axes, keepdims: keep });
      return correction === 0 ? meanSquare : g.op('Mul', [meanSquare, g.floats([n / (n - correction)], [])]);
    }
    case 'argmax':
    case 'argmin': {
      // Kiln's argmax over every axis indexes the flattened tensor.
      const flat = axesIn.length === 0 ? g.op('Reshape', [input, g.ints([-1])]) : input;
      const arg = g.op(op === 'argmax' ? 'ArgMax' : 'ArgMin', [flat], { axis: axesIn.length === 0 ? 0 : axes[0], keepdims: 0 });
      return g.op('Cast', [arg], { to: ONNX_TYPE.INT32 });
    }
    default: throw new Error(`onnx.save: the reduction '${op}' has no ONNX mapping`);
  }
}

/** Kiln's recurrent gate blocks -> ONNX's order (LSTM i f g o -> i o f c; GRU r z n -> z r h). */
const ONNX_GATES: Record<string, number[]> = { lstm: [0, 3, 1, 2], gru: [1, 0, 2], rnnTanh: [0], rnnRelu: [0] };

/** A [G·H, ...] weight (or [G·H] bias) with its blocks in ONNX's order and a leading direction axis. */
function onnxGates(c: EmitContext, w: number, order: number[]): string {
  const g = c.g;
  const shape = c.shape(w);
  const blocks = order.length === 1 ? [c.name(w)] : g.node('Split', [c.name(w), g.ints(Array(order.length).fill(shape[0] / order.length))], { axis: 0 }, order.length);
  const ordered = order.length === 1 ? blocks[0] : g.op('Concat', order.map((i) => blocks[i]), { axis: 0 });
  return g.op('Unsqueeze', [ordered, g.ints([0])]);
}

function recurrentNodes(c: EmitContext, [cell, x, h0, c0, wIh, wHh, bIh, bHh, reverse]: any[], r: number): void {
  const g = c.g;
  const kind = c.opName('recurrent', cell);
  const order = ONNX_GATES[kind];
  const hidden = c.shape(wHh)[1];
  const gh = order.length * hidden;
  const bias = (h: number): string => (h < 0 ? g.floats(new Float32Array(gh), [1, gh]) : onnxGates(c, h, order));
  const b = g.op('Concat', [bias(bIh), bias(bHh)], { axis: 1 });
  const inputs = [
    g.op('Transpose', [c.name(x)], { perm: [1, 0, 2] }),
    onnxGates(c, wIh, order),
    onnxGates(c, wHh, order),
    b,
    '',
    g.op('Unsqueeze', [c.name(h0), g.ints([0])]),
  ];
  if (kind === 'lstm') inputs.push(g.op('Unsqueeze', [c.name(c0), g.ints([0])]));
  const attributes: Record<string, AttributeValue> = { hidden_size: hidden, direction: reverse ? 'reverse' : 'forward' };
  // Kiln's GRU is PyTorch's: the reset gate applies after the hidden projection.
  if (kind === 'gru') attributes.linear_before_reset = 1;
  const opType = kind === 'lstm' ? 'LSTM' : kind === 'gru' ? 'GRU' : 'RNN';
  const outs = g.node(opType, inputs, attributes, kind === 'lstm' ? 3 : 2);
  if (kind === 'rnnRelu') {
    // RNN's activations attribute is a list of strings.
    g.nodes[g.nodes.length - 1].attribute!.push({ name: 'activations', type: 8, strings: [new TextEncoder().encode('Relu')] });
  }
  // Kiln packs [batch, steps + states, H]: the outputs, then final h (and c).
  const y = g.op('Transpose', [g.op('Squeeze', [outs[0], g.ints([1])])], { perm: [1, 0, 2] });
  const states = outs.slice(1).map((s) => g.op('Transpose', [s], { perm: [1, 0, 2] }));
  c.set(r, g.op('Concat', [y, ...states], { axis: 1 }));
}

/** Kiln's (top, bottom, left, right) padding as ONNX's pads (begins, then ends: top, left, bottom, right). */
const onnxPads = ([top, bottom, left, right]: number[]): number[] => [top, left, bottom, right];

/** A convolution's geometry group (ts/backends/backend.ts ConvGeometry) as ONNX attributes. */
function convAttributes({ stride, padding, dilation, groups }: ConvGeometry): Record<string, AttributeValue> {
  return { strides: stride, pads: onnxPads(padding), dilations: dilation, group: groups };
}

/** softmax(q·kᵀ·scale + masks)·v with the masks as additive -1e9 (fully masked rows differ from Kiln's zeros). */
function attentionNodes(c: EmitContext, [q, k, v, mask, causal, scale]: any[], r: number): void {
  const g = c.g;
  const qs = c.shape(q);
  const ks = c.shape(k);
  const rank = qs.length;
  const [tq, d] = qs.slice(-2);
  const tk = ks[ks.length - 2];
  let scores = g.op('MatMul', [c.name(q), g.op('Transpose', [c.name(k)], { perm: swapLast(rank) })]);
  scores = g.op('Mul', [scores, g.floats([Number.isNaN(scale) ? 1 / Math.sqrt(d) : scale], [])]);
  if (causal) {
    const m = new Float32Array(tq * tk);
    for (let i = 0; i < tq; i++) for (let j = 0; j < tk; j++) m[i * tk + j] = j <= i + (tk - tq) ? 0 : -1e9;
    scores = g.op('Add', [scores, g.floats(m, [tq, tk])]);
  }
  if (mask >= 0) {
    const batch = c.shape(mask)[0];
    const reshaped = g.op('Reshape', [c.name(mask), g.ints([batch, ...Array(rank - 3).fill(1), 1, tk])]);
    const additive = c.dtype(mask) === 'bool' ? g.op('Where', [reshaped, g.floats([-1e9], []), g.floats([0], [])]) : reshaped;
    scores = g.op('Add', [scores, additive]);
  }
  c.set(r, g.op('MatMul', [g.op('Softmax', [scores], { axis: -1 }), c.name(v)]));
}

export const EMITTERS: Record<string, Emitter> = {
  unary: (c, [op, x, alpha], r) => c.set(r, unaryNode(c, c.opName('unary', op), c.name(x), alpha)),
  binary: (c, [op, a, b], r) => {
    const name = c.opName('binary', op);
    if (name === 'notEqual') return c.set(r, c.g.op('Not', [c.g.op('Equal', [c.name(a), c.name(b)])]));
    c.set(r, c.g.op(BINARY[name], [c.name(a), c.name(b)]));
  },
  where: (c, [cond, a, b], r) => c.set(r, c.g.op('Where', [c.name(cond), c.name(a), c.name(b)])),
  reduce: (c, [op, x, axes, keepDims, correction], r) => c.set(r, reduceNode(c, c.opName('reduce', op), x, axes, keepDims, correction)),
  softmax: (c, [x, axis, log], r) => c.set(r, c.g.op(log ? 'LogSoftmax' : 'Softmax', [c.name(x)], { axis })),
  matmul: (c, [a, b, ta, tb], r) => {
    const side = (h: number, t: boolean): string => (t ? c.g.op('Transpose', [c.name(h)], { perm: swapLast(c.shape(h).length) }) : c.name(h));
    c.set(r, c.g.op('MatMul', [side(a, ta), side(b, tb)]));
  },
  // MatMul on the weight's transpose, as nn.Linear's matmul with transposeB was written before;
  // the residual as Add(residual, ·) after the bias, the skip connection the importer fuses back.
  linear: (c, [x, w, bias, residual], r) => {
    const product = c.g.op('MatMul', [c.name(x), c.g.op('Transpose', [c.name(w)], { perm: [1, 0] })]);
    const biased = bias >= 0 ? c.g.op('Add', [product, c.name(bias)]) : product;
    c.set(r, residual >= 0 ? c.g.op('Add', [c.name(residual), biased]) : biased);
  },
  reshape: asReshape,
  squeeze: asReshape,
  unsqueeze: asReshape,
  contiguous: identity,
  detach: identity,
  permute: (c, [x, perm], r) => c.set(r, c.g.op('Transpose', [c.name(x)], { perm })),
  slice: (c, [x, begin, size], r) => {
    const shape = c.shape(x);
    const ends = begin.map((b: number, i: number) => (size[i] < 0 ? shape[i] : b + size[i]));
    c.set(r, c.g.op('Slice', [c.name(x), c.g.ints(begin), c.g.ints(ends), c.g.ints([...shape.keys()])]));
  },
  expand: (c, [x], r) => c.set(r, c.g.op('Expand', [c.name(x), c.g.ints(c.shape(r))])),
  cast: (c, [x, dtype], r) => c.set(r, c.g.op('Cast', [c.name(x)], { to: KILN_TO_ONNX_TYPE[dtype] })),
  concat: (c, [xs, axis], r) => c.set(r, c.g.op('Concat', xs.map((h: number) => c.name(h)), { axis })),
  stack: (c, [xs, axis], r) => {
    const rank = c.shape(xs[0]).length + 1;
    const a = axis < 0 ? axis + rank : axis;
    c.set(r, c.g.op('Concat', xs.map((h: number) => c.g.op('Unsqueeze', [c.name(h), c.g.ints([a])])), { axis: a }));
  },
  split: (c, [x, , , axis], results) => {
    const rank = c.shape(x).length;
    const a = axis < 0 ? axis + rank : axis;
    const sizes = Array.from(results as ArrayLike<number>, (h) => c.shape(h)[a]);
    const outs = c.g.node('Split', [c.name(x), c.g.ints(sizes)], { axis: a }, sizes.length);
    Array.from(results as ArrayLike<number>).forEach((h, i) => c.set(h, outs[i]));
  },
  gather: (c, [x, indices, axis], r) => c.set(r, c.g.op('Gather', [c.name(x), c.name(indices)], { axis })),
  pad: (c, [x, paddings, value], r) => {
    const before = paddings.filter((_: number, i: number) => i % 2 === 0);
    const after = paddings.filter((_: number, i: number) => i % 2 === 1);
    c.set(r, c.g.op('Pad', [c.name(x), c.g.ints([...before, ...after]), c.g.floats([value], [])]));
  },
  // The fused epilogue as the nodes it stands for: Conv, then Add(residual), then the activation.
  conv2d: (c, [x, w, bias, residual, geometry, alpha, activation], r) => {
    const inputs = [c.name(x), c.name(w), ...(bias >= 0 ? [c.name(bias)] : [])];
    let y = c.g.op('Conv', inputs, { kernel_shape: c.shape(w).slice(2), ...convAttributes(geometry) });
    if (residual >= 0) y = c.g.op('Add', [y, c.name(residual)]);
    if (activation != null) y = unaryNode(c, activation, y, alpha);
    c.set(r, y);
  },
  convTranspose2d: (c, [x, w, bias, geometry, outputPadding], r) => {
    const inputs = [c.name(x), c.name(w), ...(bias >= 0 ? [c.name(bias)] : [])];
    c.set(r, c.g.op('ConvTranspose', inputs, { kernel_shape: c.shape(w).slice(2), ...convAttributes(geometry), output_padding: outputPadding }));
  },
  maxPool2d: (c, [x, { kernel, stride, padding, dilation }], r) =>
    c.set(r, c.g.op('MaxPool', [c.name(x)], { kernel_shape: kernel, strides: stride, pads: onnxPads(padding), dilations: dilation })),
  avgPool2d: (c, [x, { kernel, stride, padding, countIncludePad }], r) =>
    c.set(r, c.g.op('AveragePool', [c.name(x)], { kernel_shape: kernel, strides: stride, pads: onnxPads(padding), count_include_pad: countIncludePad ? 1 : 0 })),
  batchNorm: (c, [x, weight, bias, mean, variance, training, , eps], r) => {
    if (training) throw new Error('onnx.save: batchNorm ran in training mode; export traces the model in eval mode (call model.eval())');
    if (mean < 0 || variance < 0) throw new Error('onnx.save: batchNorm without running statistics normalizes with batch statistics, which ONNX inference cannot express');
    const channels = c.shape(x)[1];
    const weightName = weight >= 0 ? c.name(weight) : c.g.floats(new Float32Array(channels).fill(1));
    const biasName = bias >= 0 ? c.name(bias) : c.g.floats(new Float32Array(channels));
    c.set(r, c.g.op('BatchNormalization', [c.name(x), weightName, biasName, c.name(mean), c.name(variance)], { epsilon: { float: eps } }));
  },
  layerNorm: (c, [x, weight, bias, axis, eps], r) => {
    // LayerNormalization (opset 17) needs a scale; Kiln's weight and bias are optional.
    const normalized = c.shape(x).slice(axis < 0 ? axis + c.shape(x).length : axis);
    const size = normalized.reduce((p, d) => p * d, 1);
    const weightName = weight >= 0 ? c.name(weight) : c.g.floats(new Float32Array(size).fill(1), normalized);
    const inputs = [c.name(x), weightName, ...(bias >= 0 ? [c.name(bias)] : [])];
    c.set(r, c.g.op('LayerNormalization', inputs, { axis, epsilon: { float: eps } }));
  },
  recurrent: (c, args, r) => recurrentNodes(c, args, r),
  attention: (c, [q, k, v, mask, options], r) => {
    if (options.dropout > 0) throw new Error('onnx.save: attention with dropout cannot be exported (trace in eval mode)');
    attentionNodes(c, [q, k, v, mask, options.causal, options.scale], r);
  },
};
