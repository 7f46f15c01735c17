/**
 * ONNX ops that compute or rearrange shapes: Shape, Size, Reshape, Flatten, Transpose, Concat,
 * Split, Slice, Gather, Squeeze, Unsqueeze, Expand, Tile, Constant, ConstantOfShape, Range, Pad,
 * Trilu, OneHot, DepthToSpace, SpaceToDepth, Dropout. Shape-valued inputs (a Reshape's target,
 * Slice's starts) are small int tensors read back to the host; the data stays on the backend.
 */

import { full, tensor } from '../../ops/creation.js';
import { mul } from '../../ops/elementwise.js';
import { randu } from '../../ops/creation.js';
import { concat, expand, gather, oneHot, pad, permute, reshape, slice, split, squeeze, unsqueeze } from '../../ops/shape.js';
import { viewsFor } from '../../ops/prepared.js';
import type { Tensor } from '../../tensor.js';
import { axisOf, constantsIn, input, intValues, type Inputs, type OnnxNode, type OpImpl, type PrepareImpl } from '../node.js';
import { asFloat, inFloat } from './numeric.js';

const ints = (values: number[]): Tensor => tensor(Int32Array.from(values), [values.length], 'int32');

/** An op argument that moved from an attribute to an input at opset `since` (axes, pads, split). */
function argument(inputs: Inputs, index: number, node: OnnxNode, attribute: string, since: number): number[] | undefined {
  if (node.opset < since) return node.ints(attribute);
  const t = inputs[index];
  return t === undefined ? undefined : intValues(t);
}

function reshapeOp(inputs: Inputs, node: OnnxNode): Tensor[] {
  return [reshape(input(inputs, 0, node), reshapeTarget(inputs, node))];
}

/** A Reshape's target for its x: 0 copies x's dim (unless allowzero), -1 is inferred (by reshape). */
function reshapeTarget(inputs: Inputs, node: OnnxNode): number[] {
  const x = input(inputs, 0, node);
  const target = node.opset < 5 ? node.ints('shape') ?? [] : intValues(input(inputs, 1, node));
  const allowZero = node.int('allowzero', 0) === 1;
  return target.map((d, i) => (d === 0 && !allowZero ? x.shape[i] : d));
}

/** A Transpose's permutation for its x (reversed dims by default). */
const transposePerm = (inputs: Inputs, node: OnnxNode): number[] => node.ints('perm') ?? [...input(inputs, 0, node).shape.keys()].reverse();

/**
 * Prepared forms (../node.ts, Prepared) of the view ops a compiled run meets between fused nodes
 * (a Transformer's head split and merge): resolved once, their results carry their shape.
 */
export const shapePrepared: Record<string, PrepareImpl> = {
  Reshape: (inputs, node, context) => {
    // The target's values are read once: a model constant's only.
    if (!constantsIn(context, [inputs[1]])) return undefined;
    const target = reshapeTarget(inputs, node);
    const view = viewsFor((impl, x) => [impl.reshape(x, target)]);
    return (a) => view(a[0]!);
  },
  Transpose: (inputs, node) => {
    const perm = transposePerm(inputs, node);
    const view = viewsFor((impl, x) => [impl.permute(x, perm)]);
    return (a) => view(a[0]!);
  },
};

/** Indices 0..n-1 of an axis picked by start/end/step with ONNX's clamping rules. */
function sliceIndices(size: number, start: number, end: number, step: number): number[] {
  const clampTo = (v: number, low: number, high: number): number => Math.min(Math.max(v, low), high);
  let s = start < 0 ? start + size : start;
  let e = end < 0 ? end + size : end;
  if (step > 0) {
    s = clampTo(s, 0, size);
    e = clampTo(e, 0, size);
  } else {
    s = clampTo(s, -1, size - 1);
    e = clampTo(e, -1, size - 1);
  }
  const out: number[] = [];
  for (let i = s; step > 0 ? i < e : i > e; i += step) out.push(i);
  return out;
}

function sliceOp(inputs: Inputs, node: OnnxNode): Tensor[] {
  let x = input(inputs, 0, node);
  const starts = argument(inputs, 1, node, 'starts', 10) ?? [];
  const ends = argument(inputs, 2, node, 'ends', 10) ?? [];
  const axes = (argument(inputs, 3, node, 'axes', 10) ?? starts.map((_, i) => i)).map((a) => axisOf(a, x.rank, node));
  const steps = (node.opset >= 10 ? argument(inputs, 4, node, 'steps', 10) : undefined) ?? starts.map(() => 1);
  if (ends.length !== starts.length || axes.length !== starts.length || steps.length !== starts.length) {
    node.fail(`starts, ends, axes and steps differ in length (${starts.length}, ${ends.length}, ${axes.length}, ${steps.length})`);
  }
  const begin = x.shape.map(() => 0);
  const size = [...x.shape];
  const strided: Array<[number, number[]]> = [];
  starts.forEach((start, i) => {
    if (steps[i] === 0) node.fail('a slice step cannot be 0');
    const picked = sliceIndices(x.shape[axes[i]], start, ends[i], steps[i]);
    if (steps[i] === 1) {
      begin[axes[i]] = picked.length > 0 ? picked[0] : 0;
      size[axes[i]] = picked.length;
    } else {
      strided.push([axes[i], picked]);
    }
  });
  x = slice(x, begin, size);
  // Other steps (negative ones reverse) pick their indices with a gather.
  for (const [axis, picked] of strided) x = gather(x, ints(picked), axis);
  return [x];
}

function gatherOp(inputs: Inputs, node: OnnxNode): Tensor[] {
  const x = input(inputs, 0, node);
  let indices = input(inputs, 1, node);
  const axis = axisOf(node.int('axis', 0), x.rank, node);
  const values = indices.dataSync();
  // ONNX allows negative indices (from the end); Kiln's gather does not.
  if (values.some((v) => v < 0)) indices = tensor(Int32Array.from(values, (v) => (v < 0 ? v + x.shape[axis] : v)), [...indices.shape], 'int32');
  if (indices.dtype !== 'int32') indices = indices.cast('int32');
  return [gather(x, indices, axis)];
}

function unsqueezeOp(inputs: Inputs, node: OnnxNode): Tensor[] {
  let x = input(inputs, 0, node);
  const axes = argument(inputs, 1, node, 'axes', 13) ?? node.fail('needs axes');
  const rank = x.rank + axes.length;
  for (const a of axes.map((a) => (a < 0 ? a + rank : a)).sort((p, q) => p - q)) x = unsqueeze(x, a);
  return [x];
}

function squeezeOp(inputs: Inputs, node: OnnxNode): Tensor[] {
  const x = input(inputs, 0, node);
  const axes = argument(inputs, 1, node, 'axes', 13);
  return [squeeze(x, axes === undefined ? undefined : axes.map((a) => axisOf(a, x.rank, node)))];
}

/** ONNX Expand broadcasts both ways: the result has the broadcast of x's shape and `shape`. */
function expandOp(inputs: Inputs, node: OnnxNode): Tensor[] {
  const x = input(inputs, 0, node);
  const shape = intValues(input(inputs, 1, node));
  const rank = Math.max(x.rank, shape.length);
  const a = [...Array(rank - x.rank).fill(1), ...x.shape];
  const b = [...Array(rank - shape.length).fill(1), ...shape];
  const out = a.map((d, i) => (d === 1 ? b[i] : d));
  return [expand(x, out)];
}

function tileOp(inputs: Inputs, node: OnnxNode): Tensor[] {
  let x = input(inputs, 0, node);
  const repeats = intValues(input(inputs, 1, node));
  if (repeats.length !== x.rank) node.fail(`repeats has ${repeats.length} entries for a rank-${x.rank} input`);
  repeats.forEach((r, axis) => {
    if (r !== 1) x = concat(Array(r).fill(x), axis);
  });
  return [x];
}

function constantOp(_inputs: Inputs, node: OnnxNode): Tensor[] {
  const value = node.tensor('value');
  if (value !== undefined) return [value];
  if (node.has('value_float')) return [tensor(node.float('value_float', 0))];
  if (node.has('value_floats')) return [tensor(node.floats('value_floats') ?? [])];
  if (node.has('value_int')) return [tensor(Int32Array.of(node.int('value_int', 0)), [], 'int32')];
  if (node.has('value_ints')) return [ints(node.ints('value_ints') ?? [])];
  return node.fail(`Kiln reads value, value_float(s) and value_int(s); this node has ${node.attributeNames().join(', ') || 'no attribute'}`);
}

function constantOfShapeOp(inputs: Inputs, node: OnnxNode): Tensor[] {
  const shape = intValues(input(inputs, 0, node));
  const value = node.tensor('value');
  const fill = value === undefined ? 0 : Number(value.dataSync()[0]);
  return [full(shape, fill, value?.dtype ?? 'float32')];
}

function rangeOp(inputs: Inputs, node: OnnxNode): Tensor[] {
  const [start, limit, delta] = [0, 1, 2].map((i) => Number(input(inputs, i, node).dataSync()[0]));
  if (delta === 0) node.fail('delta cannot be 0');
  const n = Math.max(Math.ceil((limit - start) / delta), 0);
  const values = Array.from({ length: n }, (_, i) => start + i * delta);
  const type = input(inputs, 0, node).dtype;
  return [type === 'float32' ? tensor(Float32Array.from(values), [n]) : tensor(Int32Array.from(values), [n], 'int32')];
}

/** Indices of an axis padded by reflection or by repeating its edge (Pad's other modes). */
function paddedIndices(size: number, before: number, after: number, mode: string): number[] {
  const out: number[] = [];
  for (let i = -before; i < size + after; i++) {
    if (mode === 'edge') out.push(Math.min(Math.max(i, 0), size - 1));
    else if (mode === 'wrap') out.push(((i % size) + size) % size);
    else {
      // reflect: mirror without repeating the edge; period 2(size - 1).
      const period = 2 * (size - 1);
      let j = period === 0 ? 0 : ((i % period) + period) % period;
      if (j >= size) j = period - j;
      out.push(j);
    }
  }
  return out;
}

function padOp(inputs: Inputs, node: OnnxNode): Tensor[] {
  let x = input(inputs, 0, node);
  const mode = node.string('mode', 'constant');
  const pads = (node.opset < 11 ? node.ints('pads') : intValues(input(inputs, 1, node))) ?? node.fail('needs pads');
  const value = node.opset < 11 ? node.float('value', 0) : inputs[2] === undefined ? 0 : Number(inputs[2].dataSync()[0] ?? 0);
  const axes = (node.opset >= 18 && inputs[3] !== undefined ? intValues(inputs[3]) : [...x.shape.keys()]).map((a) => axisOf(a, x.rank, node));
  if (pads.length !== 2 * axes.length) node.fail(`pads has ${pads.length} entries for ${axes.length} axes`);
  const pairs: Array<[number, number]> = x.shape.map(() => [0, 0]);
  axes.forEach((a, i) => (pairs[a] = [pads[i], pads[i + axes.length]]));
  if (pairs.some(([b, e]) => b < 0 || e < 0)) node.fail(`negative pads (cropping) are not supported: ${JSON.stringify(pads)}`);
  if (mode === 'constant') return [inFloat([x], (f) => pad(f, pairs, value))];
  if (mode !== 'reflect' && mode !== 'edge' && mode !== 'wrap') node.fail(`unknown mode '${mode}' (constant, reflect, edge, wrap)`);
  pairs.forEach(([b, e], axis) => {
    if (b > 0 || e > 0) x = gather(x, ints(paddedIndices(x.shape[axis], b, e, mode)), axis);
  });
  return [x];
}

/** Keeps the upper (or lower) triangle of the last two dims, shifted by k; the rest is zero. */
function triluOp(inputs: Inputs, node: OnnxNode): Tensor[] {
  const x = input(inputs, 0, node);
  if (x.rank < 2) node.fail(`expects at least 2 dims, got [${x.shape.join(', ')}]`);
  const k = inputs[1] === undefined ? 0 : Number(inputs[1].dataSync()[0]);
  const upper = node.int('upper', 1) === 1;
  const [rows, cols] = x.shape.slice(-2);
  const mask = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) mask[i * cols + j] = (upper ? j - i >= k : j - i <= k) ? 1 : 0;
  const m = tensor(mask, [rows, cols]);
  return [inFloat([x], (f) => mul(f, m))];
}

function oneHotOp(inputs: Inputs, node: OnnxNode): Tensor[] {
  const indices = input(inputs, 0, node);
  const depth = Number(input(inputs, 1, node).dataSync()[0]);
  const [off, on] = Array.from(input(inputs, 2, node).dataSync(), Number);
  // Out-of-range indices give a row of `off` values: they select an extra column that is cut off.
  const fixed = tensor(Int32Array.from(indices.dataSync(), (v) => (v < 0 ? v + depth : v)).map((v) => (v < 0 || v >= depth ? depth : v)), [...indices.shape], 'int32');
  const wide = oneHot(fixed, depth + 1, on, off);
  let y = slice(wide, wide.shape.map(() => 0), [...wide.shape.slice(0, -1), depth]);
  const axis = axisOf(node.int('axis', -1), y.rank, node);
  if (axis !== y.rank - 1) {
    const perm = [...Array(y.rank - 1).keys()];
    perm.splice(axis, 0, y.rank - 1);
    y = permute(y, perm);
  }
  return [y];
}

/** DepthToSpace (DCR or CRD) and SpaceToDepth as reshape -> permute -> reshape. x: [N, C, H, W] */
function depthToSpaceOp(inputs: Inputs, node: OnnxNode): Tensor[] {
  const x = input(inputs, 0, node);
  const b = node.int('blocksize') ?? node.fail('needs blocksize');
  const [n, c, h, w] = x.shape;
  const crd = node.string('mode', 'DCR') === 'CRD';
  const parts = crd ? reshape(x, [n, c / (b * b), b, b, h, w]) : reshape(x, [n, b, b, c / (b * b), h, w]);
  const moved = permute(parts, crd ? [0, 1, 4, 2, 5, 3] : [0, 3, 4, 1, 5, 2]);
  return [reshape(moved, [n, c / (b * b), h * b, w * b])];
}

function spaceToDepthOp(inputs: Inputs, node: OnnxNode): Tensor[] {
  const x = input(inputs, 0, node);
  const b = node.int('blocksize') ?? node.fail('needs blocksize');
  const [n, c, h, w] = x.shape;
  const parts = reshape(x, [n, c, h / b, b, w / b, b]);
  // DCR (the default) puts the block offsets before the channels, CRD after.
  const crd = node.string('mode', 'DCR') === 'CRD';
  return [reshape(permute(parts, crd ? [0, 1, 3, 5, 2, 4] : [0, 3, 5, 1, 2, 4]), [n, c * b * b, h / b, w / b])];
}

/** The identity at inference; inverted dropout in training mode (opset 12's training_mode input, or the model's mode). */
function dropoutOp(inputs: Inputs, node: OnnxNode, context: { training: boolean }): Tensor[] {
  const x = input(inputs, 0, node);
  const ratio = node.opset >= 12 ? (inputs[1] === undefined ? 0.5 : Number(inputs[1].dataSync()[0])) : node.float('ratio', 0.5);
  const training = node.opset >= 12 && inputs[2] !== undefined ? Boolean(inputs[2].dataSync()[0]) : context.training;
  if (!training || ratio === 0) return [x, full([...x.shape], 1, 'bool')];
  const mask = randu([...x.shape]).greaterEqual(ratio);
  return [mul(x, mul(asFloat(mask), 1 / (1 - ratio))), mask];
}

function splitOp(inputs: Inputs, node: OnnxNode): Tensor[] {
  const x = input(inputs, 0, node);
  const axis = axisOf(node.int('axis', 0), x.rank, node);
  const sizes = argument(inputs, 1, node, 'split', 13);
  if (sizes !== undefined && sizes.length > 0) return split(x, sizes, axis);
  const count = node.opset >= 18 ? node.int('num_outputs', node.outputs.length) : node.outputs.length;
  const size = x.shape[axis];
  // Uneven: chunks of ceil(size / count), the last one smaller (opset 18's rule).
  const chunk = Math.ceil(size / count);
  return split(x, Array.from({ length: count }, (_, i) => Math.max(Math.min(chunk, size - i * chunk), 0)), axis);
}

export const shapeOps: Record<string, OpImpl> = {
  Shape: (inputs, node) => {
    const dims = [...input(inputs, 0, node).shape];
    const rank = dims.length;
    const clampTo = (v: number): number => Math.min(Math.max(v < 0 ? v + rank : v, 0), rank);
    return [ints(dims.slice(clampTo(node.int('start', 0)), clampTo(node.int('end', rank))))];
  },
  Size: (inputs, node) => [tensor(Int32Array.of(input(inputs, 0, node).size), [], 'int32')],
  Reshape: reshapeOp,
  Flatten: (inputs, node) => {
    const x = input(inputs, 0, node);
    const axis = node.int('axis', 1);
    const a = axis < 0 ? axis + x.rank : axis;
    const outer = x.shape.slice(0, a).reduce((p, q) => p * q, 1);
    return [reshape(x, [outer, x.size / Math.max(outer, 1)])];
  },
  Transpose: (inputs, node) => [permute(input(inputs, 0, node), transposePerm(inputs, node))],
  Concat: (inputs, node) => {
    const xs = inputs.filter((t): t is Tensor => t !== undefined);
    const axis = axisOf(node.int('axis') ?? node.fail('needs axis'), xs[0].rank, node);
    const kept = xs.filter((t) => t.shape[axis] !== 0);
    return [kept.length === 0 ? xs[0] : kept.length === 1 ? kept[0] : concat(kept, axis)];
  },
  Split: splitOp,
  Slice: sliceOp,
  Gather: gatherOp,
  Squeeze: squeezeOp,
  Unsqueeze: unsqueezeOp,
  Expand: expandOp,
  Tile: tileOp,
  Constant: constantOp,
  ConstantOfShape: constantOfShapeOp,
  Range: rangeOp,
  Pad: padOp,
  Trilu: triluOp,
  OneHot: oneHotOp,
  DepthToSpace: depthToSpaceOp,
  SpaceToDepth: spaceToDepthOp,
  Dropout: dropoutOp,
};
