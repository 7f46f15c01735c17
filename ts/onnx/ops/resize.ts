/**
 * ONNX Resize (opset 10+) and Upsample (opsets 7-9), modes 'nearest' and 'linear', as gathers
 * along each resized axis: the source index (and, for linear, the two neighbours and their
 * weights) of every output position is computed on the host from the coordinate transformation
 * mode, then applied with gather and a weighted sum, one axis at a time (linear is separable, so
 * this is bilinear/trilinear). Gradients flow to the input through the gathers.
 */

import { tensor } from '../../ops/creation.js';
import { add, mul } from '../../ops/elementwise.js';
import { gather, reshape } from '../../ops/shape.js';
import type { Tensor } from '../../tensor.js';
import { input, intValues, type Inputs, type OnnxNode, type OpImpl } from '../node.js';

/** Output coordinate -> input coordinate, per ONNX's coordinate_transformation_mode. */
function sourceCoordinate(mode: string, out: number, scale: number, inSize: number, outSize: number, outCount: number, node: OnnxNode): number {
  switch (mode) {
    case 'half_pixel': return (out + 0.5) / scale - 0.5;
    case 'pytorch_half_pixel': return outSize > 1 ? (out + 0.5) / scale - 0.5 : 0;
    // outSize here is in · scale unrounded when scales were given (the reference's length_resized).
    case 'align_corners': return outSize === 1 ? 0 : (out * (inSize - 1)) / (outSize - 1);
    case 'asymmetric': return out / scale;
    case 'tf_half_pixel_for_nn': return (out + 0.5) / scale;
    case 'half_pixel_symmetric': {
      const adjustment = outCount / outSize;
      const offset = (inSize / 2) * (1 - adjustment);
      return offset + (out + 0.5) / scale - 0.5;
    }
    default: return node.fail(`coordinate_transformation_mode '${mode}' is not supported`);
  }
}

function nearestIndex(mode: string, x: number, node: OnnxNode): number {
  switch (mode) {
    case 'round_prefer_floor': return x % 1 === 0.5 ? Math.floor(x) : Math.round(x);
    case 'round_prefer_ceil': return Math.round(x);
    case 'floor': return Math.floor(x);
    case 'ceil': return Math.ceil(x);
    default: return node.fail(`nearest_mode '${mode}' is not supported`);
  }
}

const ints = (values: number[]): Tensor => tensor(Int32Array.from(values), [values.length], 'int32');

/** x resized along `axis` to `outSize`. */
function resizeAxis(x: Tensor, axis: number, outSize: number, scale: number, exactLength: number, node: OnnxNode, opts: { mode: string; transform: string; nearest: string }): Tensor {
  const inSize = x.shape[axis];
  const clampTo = (i: number): number => Math.min(Math.max(i, 0), inSize - 1);
  const coords = Array.from({ length: outSize }, (_, o) => sourceCoordinate(opts.transform, o, scale, inSize, exactLength, outSize, node));
  if (opts.mode === 'nearest') return gather(x, ints(coords.map((c) => clampTo(nearestIndex(opts.nearest, c, node)))), axis);
  const clamped = coords.map((c) => Math.min(Math.max(c, 0), inSize - 1));
  const low = clamped.map((c) => Math.floor(c));
  const high = low.map((l) => clampTo(l + 1));
  const weightShape = x.shape.map((d, i) => (i === axis ? outSize : 1));
  const wHigh = reshape(tensor(Float32Array.from(clamped, (c, i) => c - low[i])), weightShape);
  const wLow = reshape(tensor(Float32Array.from(clamped, (c, i) => 1 - (c - low[i]))), weightShape);
  return add(mul(gather(x, ints(low), axis), wLow), mul(gather(x, ints(high), axis), wHigh));
}

function resize(x: Tensor, scales: number[] | undefined, sizes: number[] | undefined, node: OnnxNode, defaults: { transform: string; nearest: string }): Tensor {
  const mode = node.string('mode', 'nearest');
  if (mode !== 'nearest' && mode !== 'linear') node.fail(`mode '${mode}' is not supported (nearest, linear)`);
  if (node.int('antialias', 0) === 1) node.fail('antialias is not supported');
  const opts = { mode, transform: node.string('coordinate_transformation_mode', defaults.transform), nearest: node.string('nearest_mode', defaults.nearest) };
  if (opts.transform === 'tf_crop_and_resize') node.fail("coordinate_transformation_mode 'tf_crop_and_resize' is not supported");
  // `axes` names the axes that scales / sizes list; the others keep their size.
  const axes = (node.ints('axes') ?? [...x.shape.keys()]).map((a) => (a < 0 ? a + x.rank : a));
  const given = scales ?? sizes!;
  if (given.length !== axes.length) node.fail(`${scales ? 'scales' : 'sizes'} has ${given.length} entries for ${axes.length} axes`);
  const fullScales = x.shape.map(() => 1);
  const fullSizes = [...x.shape];
  const policy = node.string('keep_aspect_ratio_policy', 'stretch');
  axes.forEach((axis, i) => {
    if (scales !== undefined) {
      fullScales[axis] = scales[i];
      fullSizes[axis] = Math.floor(x.shape[axis] * scales[i]);
    } else {
      fullSizes[axis] = sizes![i];
      fullScales[axis] = sizes![i] / x.shape[axis];
    }
  });
  if (sizes !== undefined && policy !== 'stretch') {
    // One scale for every listed axis: the largest that fits (not_larger) or the smallest that covers (not_smaller).
    const ratios = axes.map((a, i) => sizes[i] / x.shape[a]);
    const scale = policy === 'not_larger' ? Math.min(...ratios) : policy === 'not_smaller' ? Math.max(...ratios) : node.fail(`keep_aspect_ratio_policy '${policy}' is not supported`);
    for (const a of axes) {
      fullScales[a] = scale;
      fullSizes[a] = Math.round(x.shape[a] * scale);
    }
  }
  let y = x;
  for (let axis = 0; axis < x.rank; axis++) {
    if (fullSizes[axis] === x.shape[axis] && fullScales[axis] === 1) continue;
    const exact = scales !== undefined ? x.shape[axis] * fullScales[axis] : fullSizes[axis];
    y = resizeAxis(y, axis, fullSizes[axis], fullScales[axis], exact, node, opts);
  }
  return y;
}

const floats = (t: Tensor | undefined): number[] | undefined => (t === undefined || t.size === 0 ? undefined : Array.from(t.dataSync(), Number));

function resizeOp(inputs: Inputs, node: OnnxNode): Tensor[] {
  const x = input(inputs, 0, node);
  // Opset 10: Resize(X, scales) with Upsample's conventions; 11+: Resize(X, roi, scales, sizes).
  if (node.opset < 11) return [resize(x, floats(input(inputs, 1, node)), undefined, node, { transform: 'asymmetric', nearest: 'floor' })];
  const scales = floats(inputs[2]);
  const sizes = inputs[3] === undefined || inputs[3].size === 0 ? undefined : intValues(inputs[3]);
  if (scales === undefined && sizes === undefined) node.fail('needs scales or sizes');
  return [resize(x, scales, sizes, node, { transform: 'half_pixel', nearest: 'round_prefer_floor' })];
}

function upsampleOp(inputs: Inputs, node: OnnxNode): Tensor[] {
  const x = input(inputs, 0, node);
  const scales = node.opset < 9 ? node.floats('scales') : floats(input(inputs, 1, node));
  if (scales === undefined) node.fail('needs scales');
  return [resize(x, scales, undefined, node, { transform: 'asymmetric', nearest: 'floor' })];
}

export const resizeOps: Record<string, OpImpl> = { Resize: resizeOp, Upsample: upsampleOp };
