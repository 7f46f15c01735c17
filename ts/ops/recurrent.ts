/**
 * One recurrent layer (Elman RNN, LSTM or GRU) in one direction over a whole sequence, as one
 * fused op: the input projections of all steps in one GEMM, then per step one small GEMM and one
 * pass over the gates; backward (full BPTT) is one Rust node. PyTorch's equations and weight
 * layout. The nn modules (nn.RNN, nn.LSTM, nn.GRU) stack layers and directions on top of it.
 */

import { backend } from '../engine.js';
import { wrap, type Tensor } from '../tensor.js';
import { handleOf, optionalHandleOf } from './util.js';

/** 'rnnTanh' and 'rnnRelu' (Elman RNN), 'lstm' (gates i, f, g, o), 'gru' (gates r, z, n). */
export type RecurrentCell = 'rnnTanh' | 'rnnRelu' | 'lstm' | 'gru';

/** Gate blocks per cell: the weights are [gates * hidden, ...]. */
export const GATES: Record<RecurrentCell, number> = { rnnTanh: 1, rnnRelu: 1, lstm: 4, gru: 3 };

/** One layer's parameters in PyTorch's layout (G = GATES[cell], H = hidden size, I = input size). */
export interface RecurrentWeights {
  /** [G·H, I] */
  wIh: Tensor;
  /** [G·H, H] */
  wHh: Tensor;
  /** [G·H], or null/undefined for none. */
  bIh?: Tensor | null;
  /** [G·H], or null/undefined for none. */
  bHh?: Tensor | null;
}

/** What `recurrent` returns: views of one packed result, so gradients flow from any of them. */
export interface RecurrentResult {
  /** `[batch, steps, H]`: the hidden state at each time step (row t is time t, also when reversed). */
  output: Tensor;
  /** `[batch, H]`: the hidden state after the last step run (time 0 when reversed). */
  h: Tensor;
  /** `[batch, H]`: the LSTM's final cell state; undefined for other cells. */
  c?: Tensor;
}

/**
 * Runs `cell` over x [batch, steps, inputSize] from h0 [batch, H] (and c0 [batch, H] for an LSTM).
 * With `reverse` the steps run from the last time step to the first (a bidirectional layer's
 * backward direction). Shapes, dtypes and the presence of c0 are checked in Rust; errors name
 * the cell, the tensor and the expected shape.
 */
export function recurrent(cell: RecurrentCell, x: Tensor, h0: Tensor, c0: Tensor | null | undefined, weights: RecurrentWeights, reverse = false): RecurrentResult {
  const b = backend();
  const code = b.codes.recurrent?.[cell];
  if (code === undefined) {
    const known = Object.keys(b.codes.recurrent ?? {});
    throw new Error(`recurrent: unknown cell '${String(cell)}' (known: ${known.join(', ') || `none on the '${b.name}' backend`})`);
  }
  const optional = (t: Tensor | null | undefined, arg: string): number => optionalHandleOf(t, cell, b, arg);
  const w = weights ?? ({} as RecurrentWeights);
  const packed = wrap(
    b.impl.recurrent(
      code,
      handleOf(x, cell, b, 'x'),
      handleOf(h0, cell, b, 'h0'),
      optional(c0, 'c0'),
      handleOf(w.wIh, cell, b, 'wIh'),
      handleOf(w.wHh, cell, b, 'wHh'),
      optional(w.bIh, 'bIh'),
      optional(w.bHh, 'bHh'),
      reverse,
    ),
    b,
  );
  // packed: [batch, steps + states, H] = the output rows, then final h (and c).
  const [batch, rows, hidden] = packed.shape;
  const steps = rows - (cell === 'lstm' ? 2 : 1);
  const row = (r: number): Tensor => {
    const view = packed.slice([0, r, 0], [batch, 1, hidden]);
    const flat = view.reshape([batch, hidden]);
    view.dispose();
    return flat;
  };
  const result: RecurrentResult = { output: packed.slice([0, 0, 0], [batch, steps, hidden]), h: row(steps) };
  if (cell === 'lstm') result.c = row(steps + 1);
  // The views keep the buffer and the gradient path; the packed handle itself is not needed.
  packed.dispose();
  return result;
}
