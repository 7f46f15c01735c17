/**
 * ONNX Conv and ConvTranspose on Kiln's 2-D convolutions. 1-D convolutions run as 2-D ones of
 * height 1; the ONNX padding rules (pads, auto_pad SAME_UPPER / SAME_LOWER / VALID, output_shape)
 * are resolved here into Kiln's per-side padding.
 */

import { conv2d, convTranspose2d, type Conv2dOptions } from '../../ops/conv.js';
import { squeeze, unsqueeze } from '../../ops/shape.js';
import type { Tensor } from '../../tensor.js';
import { input, type OnnxNode, type OpImpl } from '../node.js';
import { conv3d } from './volume.js';

/** What the window helpers read of a tensor (the NCHWc layout pass gives a blocked tensor's plain dims). */
export type Shaped = Pick<Tensor, 'rank' | 'shape'>;

/** Per spatial axis: [begin, end] padding. */
export type Pads = Array<[number, number]>;

/** The spatial rank (1, 2, or 3 where `volumes`) of a window op's input, or a clear error. */
export function spatialRank(x: Shaped, node: OnnxNode, volumes = true): number {
  const rank = x.rank - 2;
  const max = volumes ? 3 : 2;
  if (!(rank >= 1 && rank <= max)) node.fail(`Kiln runs ${volumes ? '1-D, 2-D and 3-D' : '1-D and 2-D'} ${node.opType} (inputs [N, C, L], [N, C, H, W]${volumes ? ' or [N, C, D, H, W]' : ''}), got [${x.shape.join(', ')}]`);
  return rank;
}

/** `node`'s attribute `name` with one entry per spatial axis (default `fallback` each). */
export function perAxis(node: OnnxNode, name: string, rank: number, fallback: number): number[] {
  const v = node.ints(name) ?? Array(rank).fill(fallback);
  if (v.length !== rank) node.fail(`attribute ${name} has ${v.length} entries for ${rank} spatial axes`);
  return v;
}

/**
 * Padding of a convolution or pooling window from pads / auto_pad. SAME_* make the output
 * ceil(in / stride); SAME_UPPER puts the odd pixel at the end, SAME_LOWER at the beginning.
 */
export function windowPads(node: OnnxNode, inputSize: number[], kernel: number[], stride: number[], dilation: number[]): Pads {
  const rank = inputSize.length;
  const autoPad = node.string('auto_pad', 'NOTSET');
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    return inputSize.map((size, i) => {
      const extent = dilation[i] * (kernel[i] - 1) + 1;
      const total = Math.max((Math.ceil(size / stride[i]) - 1) * stride[i] + extent - size, 0);
      const small = Math.floor(total / 2);
      return autoPad === 'SAME_UPPER' ? [small, total - small] : [total - small, small];
    });
  }
  if (autoPad === 'VALID') return inputSize.map(() => [0, 0]);
  if (autoPad !== 'NOTSET') node.fail(`unknown auto_pad '${autoPad}'`);
  const pads = node.ints('pads') ?? Array(2 * rank).fill(0);
  if (pads.length !== 2 * rank) node.fail(`pads has ${pads.length} entries for ${rank} spatial axes (expected ${2 * rank})`);
  return inputSize.map((_, i) => [pads[i], pads[i + rank]]);
}

/** Kiln's [top, bottom, left, right] from per-axis pads (1-D: the width axis). */
export const sides = (pads: Pads): [number, number, number, number] => (pads.length === 1 ? [0, 0, pads[0][0], pads[0][1]] : [pads[0][0], pads[0][1], pads[1][0], pads[1][1]]);
/** A per-axis list as Kiln's [height, width] (1-D: height 1). */
export const hw = (v: number[], one = 1): [number, number] => (v.length === 1 ? [one, v[0]] : [v[0], v[1]]);
/** [N, C, L] -> [N, C, 1, L] for the 2-D kernels; identity for 2-D inputs. */
export const to2d = (x: Tensor, rank: number): Tensor => (rank === 1 ? unsqueeze(x, 2) : x);
/** Undoes to2d on a result. */
export const from2d = (y: Tensor, rank: number): Tensor => (rank === 1 ? squeeze(y, 2) : y);

/** A Conv node's window on x and w: spatial rank, kernel, strides, dilations and pads. */
function convWindow(x: Shaped, w: Shaped, node: OnnxNode) {
  const rank = spatialRank(x, node);
  if (w.rank !== rank + 2) node.fail(`weight [${w.shape.join(', ')}] does not match the ${rank}-D input [${x.shape.join(', ')}]`);
  const kernel = w.shape.slice(2);
  const stride = perAxis(node, 'strides', rank, 1);
  const dilation = perAxis(node, 'dilations', rank, 1);
  return { rank, kernel, stride, dilation, pads: windowPads(node, x.shape.slice(2), kernel, stride, dilation) };
}

/** Kiln conv2d's stride, dilation, padding and groups for a 1-D or 2-D Conv node's window. */
const geometry2d = ({ stride, dilation, pads }: ReturnType<typeof convWindow>, node: OnnxNode): Conv2dOptions => ({
  stride: hw(stride),
  dilation: hw(dilation),
  padding: sides(pads),
  groups: node.int('group', 1),
});

/** Kiln conv2d's geometry (stride, dilation, padding, groups) for a 2-D Conv node on x and w. */
export const conv2dGeometry = (x: Shaped, w: Shaped, node: OnnxNode): Conv2dOptions => geometry2d(convWindow(x, w, node), node);

function convOp(inputs: Array<Tensor | undefined>, node: OnnxNode): Tensor[] {
  const x = input(inputs, 0, node);
  const w = input(inputs, 1, node);
  const window = convWindow(x, w, node);
  const { rank, kernel, stride, dilation, pads } = window;
  if (rank === 3) return [conv3d(x, w, inputs[2], node.int('group', 1), { kernel, stride, dilation, pads })];
  return [from2d(conv2d(to2d(x, rank), to2d(w, rank), { ...geometry2d(window, node), bias: inputs[2] ?? null }), rank)];
}

function convTransposeOp(inputs: Array<Tensor | undefined>, node: OnnxNode): Tensor[] {
  const x = input(inputs, 0, node);
  const w = input(inputs, 1, node);
  const rank = spatialRank(x, node, false);
  if (w.rank !== rank + 2) node.fail(`weight [${w.shape.join(', ')}] does not match the ${rank}-D input [${x.shape.join(', ')}]`);
  const kernel = w.shape.slice(2);
  const inSize = x.shape.slice(2);
  const stride = perAxis(node, 'strides', rank, 1);
  const dilation = perAxis(node, 'dilations', rank, 1);
  const outputPadding = perAxis(node, 'output_padding', rank, 0);
  const autoPad = node.string('auto_pad', 'NOTSET');
  const outputShape = node.ints('output_shape');
  let pads: Pads;
  if (outputShape !== undefined || autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    // The padding that yields the requested size (output_shape, or in · stride for SAME_*).
    const target = outputShape !== undefined ? outputShape.slice(-rank) : inSize.map((s, i) => s * stride[i]);
    pads = inSize.map((s, i) => {
      const total = stride[i] * (s - 1) + outputPadding[i] + dilation[i] * (kernel[i] - 1) + 1 - target[i];
      if (total < 0) {
        outputPadding[i] -= total;
        return [0, 0];
      }
      const half = Math.floor(total / 2);
      return autoPad === 'SAME_UPPER' ? [half, total - half] : [total - half, half];
    });
  } else {
    pads = windowPads(node, inSize, kernel, stride, dilation);
  }
  const y = convTranspose2d(to2d(x, rank), to2d(w, rank), {
    stride: hw(stride),
    dilation: hw(dilation),
    padding: sides(pads),
    outputPadding: hw(outputPadding, 0),
    groups: node.int('group', 1),
    bias: inputs[2] ?? null,
  });
  return [from2d(y, rank)];
}

export const convOps: Record<string, OpImpl> = { Conv: convOp, ConvTranspose: convTransposeOp };
