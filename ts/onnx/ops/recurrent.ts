/**
 * ONNX LSTM, GRU and RNN on Kiln's fused recurrent op (one call per direction). ONNX and PyTorch
 * order the gate blocks differently (LSTM: i o f c vs i f g o; GRU: z r h vs r z n), so the weight
 * blocks are reordered with slices and a concat — gradients reach the imported weights through
 * them, so fine-tuning works. Kiln's GRU is PyTorch's, which is ONNX's linear_before_reset = 1.
 */

import { zeros } from '../../ops/creation.js';
import { concat, permute, reshape, slice, split, squeeze, unsqueeze } from '../../ops/shape.js';
import { recurrent, type RecurrentCell, type RecurrentResult, type RecurrentWeights } from '../../ops/recurrent.js';
import { add, mul, sigmoid, sub, tanh } from '../../ops/elementwise.js';
import { matmul } from '../../ops/matmul.js';
import type { Tensor } from '../../tensor.js';
import { input, intValues, type Inputs, type OnnxNode, type OpImpl } from '../node.js';

/** For each Kiln gate block, the ONNX block it comes from. */
const GATE_ORDER: Record<string, number[]> = { LSTM: [0, 2, 3, 1], GRU: [1, 0, 2], RNN: [0] };
const DEFAULT_ACTIVATIONS: Record<string, string[]> = { LSTM: ['Sigmoid', 'Tanh', 'Tanh'], GRU: ['Sigmoid', 'Tanh'], RNN: ['Tanh'] };

/** One direction's [G·H, ...] matrix (or [G·H] vector) with its gate blocks in Kiln's order. */
function reorder(t: Tensor, order: number[]): Tensor {
  if (order.length === 1) return t;
  const blocks = split(t, order.length, 0);
  return concat(order.map((i) => blocks[i]), 0);
}

/** Row `d` of a [dirs, ...] tensor. */
function direction(t: Tensor, d: number): Tensor {
  return squeeze(slice(t, [d, ...t.shape.slice(1).map(() => 0)], [1, ...t.shape.slice(1)]), 0);
}

function cellOf(node: OnnxNode, dirs: number): RecurrentCell {
  const defaults = DEFAULT_ACTIVATIONS[node.opType];
  const given = node.strings('activations');
  const activations = given ?? Array(dirs).fill(defaults).flat();
  const expected = Array(dirs).fill(defaults).flat();
  if (node.opType === 'RNN' && activations.every((a) => a === 'Relu')) return 'rnnRelu';
  if (activations.join() !== expected.join()) node.fail(`activations ${JSON.stringify(activations)} are not supported (Kiln's fused cells use ${defaults.join(', ')}${node.opType === 'RNN' ? ', or Relu' : ''})`);
  return node.opType === 'LSTM' ? 'lstm' : node.opType === 'GRU' ? 'gru' : 'rnnTanh';
}

const recurrentOp: OpImpl = (inputs: Inputs, node: OnnxNode) => {
  const layout = node.int('layout', 0);
  let x = input(inputs, 0, node);
  if (x.rank !== 3) node.fail(`X must be [seq, batch, input]${layout === 1 ? ' ([batch, seq, input] with layout 1)' : ''}, got [${x.shape.join(', ')}]`);
  if (layout === 1) x = permute(x, [1, 0, 2]);
  const [steps, batch] = x.shape;
  const w = input(inputs, 1, node);
  const r = input(inputs, 2, node);
  const b = inputs[3];
  const lengths = inputs[4];
  if (lengths !== undefined && intValues(lengths).some((l) => l !== steps)) node.fail('sequence_lens shorter than the sequence are not supported (pad and mask instead)');
  const direction0 = node.string('direction', 'forward');
  const dirs = direction0 === 'bidirectional' ? 2 : 1;
  const hidden = node.int('hidden_size') ?? r.shape[2];
  if (node.has('clip')) node.fail('clip is not supported');
  if (node.int('input_forget', 0) === 1) node.fail('input_forget = 1 is not supported');
  if (inputs[7] !== undefined) node.fail('peephole weights (P) are not supported');
  const cell = cellOf(node, dirs);
  const order = GATE_ORDER[node.opType];
  let h0all = layout === 1 && inputs[5] !== undefined ? permute(inputs[5], [1, 0, 2]) : inputs[5];
  let c0all = layout === 1 && inputs[6] !== undefined ? permute(inputs[6], [1, 0, 2]) : inputs[6];
  h0all ??= zeros([dirs, batch, hidden]);
  if (cell === 'lstm') c0all ??= zeros([dirs, batch, hidden]);
  const xBatchFirst = permute(x, [1, 0, 2]); // [batch, seq, input]

  const ys: Tensor[] = [];
  const hs: Tensor[] = [];
  const cs: Tensor[] = [];
  for (let d = 0; d < dirs; d++) {
    const reverse = direction0 === 'reverse' || d === 1;
    let bIh: Tensor | null = null;
    let bHh: Tensor | null = null;
    if (b !== undefined) {
      const [wb, rb] = split(direction(b, d), 2, 0);
      bIh = reorder(wb, order);
      bHh = reorder(rb, order);
    }
    const stepwise = node.opType === 'GRU' && node.int('linear_before_reset', 0) !== 1;
    const run = stepwise ? gruResetFirst : recurrent;
    const result = run(cell, xBatchFirst, direction(h0all, d), cell === 'lstm' ? direction(c0all!, d) : null, {
      wIh: reorder(direction(w, d), order),
      wHh: reorder(direction(r, d), order),
      bIh,
      bHh,
    }, reverse);
    ys.push(unsqueeze(permute(result.output, [1, 0, 2]), 1)); // [seq, 1, batch, H]
    hs.push(unsqueeze(result.h, 0));
    if (result.c !== undefined) cs.push(unsqueeze(result.c, 0));
  }
  let y = dirs === 1 ? ys[0] : concat(ys, 1);
  let yh = dirs === 1 ? hs[0] : concat(hs, 0);
  let yc = cs.length === 0 ? undefined : dirs === 1 ? cs[0] : concat(cs, 0);
  if (layout === 1) {
    y = permute(y, [2, 0, 1, 3]);
    yh = permute(yh, [1, 0, 2]);
    if (yc !== undefined) yc = permute(yc, [1, 0, 2]);
  }
  return yc === undefined ? [y, yh] : [y, yh, yc];
};

/**
 * A GRU with linear_before_reset = 0 (ONNX's default; Keras and TensorFlow exports): the reset
 * gate scales the hidden state before its projection, which Kiln's fused (PyTorch) cell cannot
 * express, so it is composed step by step from matmul and elementwise ops. Weights are in Kiln's
 * gate order (r, z, n). x: [batch, seq, input], h0: [batch, H].
 */
function gruResetFirst(_cell: RecurrentCell, x: Tensor, h0: Tensor, _c0: Tensor | null, w: RecurrentWeights, reverse: boolean): RecurrentResult {
  const [batch, steps, inputSize] = x.shape;
  const [wr, wz, wn] = split(w.wIh, 3, 0);
  const [rr, rz, rn] = split(w.wHh, 3, 0);
  const [bir, biz, bin] = w.bIh ? split(w.bIh, 3, 0) : [0, 0, 0];
  const [bhr, bhz, bhn] = w.bHh ? split(w.bHh, 3, 0) : [0, 0, 0];
  let h = h0;
  const outputs: Tensor[] = new Array(steps);
  for (let i = 0; i < steps; i++) {
    const t = reverse ? steps - 1 - i : i;
    const xt = reshape(slice(x, [0, t, 0], [batch, 1, inputSize]), [batch, inputSize]);
    const gate = (wx: Tensor, rh: Tensor, bx: Tensor | number, bh: Tensor | number, state: Tensor): Tensor =>
      add(add(add(matmul(xt, wx, false, true), matmul(state, rh, false, true)), bx), bh);
    const r = sigmoid(gate(wr, rr, bir, bhr, h));
    const z = sigmoid(gate(wz, rz, biz, bhz, h));
    const n = tanh(gate(wn, rn, bin, bhn, mul(r, h)));
    h = add(mul(sub(1, z), n), mul(z, h));
    outputs[t] = unsqueeze(h, 1);
  }
  return { output: concat(outputs, 1), h };
}

export const recurrentOps: Record<string, OpImpl> = { LSTM: recurrentOp, GRU: recurrentOp, RNN: recurrentOp };
