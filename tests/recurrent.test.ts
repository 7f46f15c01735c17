/**
 * kiln.recurrent, the fused one-layer RNN/LSTM/GRU op: forward and every gradient against the
 * same computation written from primitive ops (tests/recurrent-reference.ts), backward against
 * finite differences, and its errors. Runs on every backend.
 */
import { expect, it } from 'vitest';
import * as kiln from '../ts/index.js';
import type { RecurrentCell, RecurrentResult, Tensor } from '../ts/index.js';
import { forEachBackend } from './backends.js';
import { gradCheck, uniform } from './gradcheck.js';
import { T, assertClose, expectThrows, randND, read } from './helpers.js';
import type { ND } from './reference.js';
import { recurrentFromPrimitives } from './recurrent-reference.js';

const CELLS: RecurrentCell[] = ['rnnTanh', 'rnnRelu', 'lstm', 'gru'];
const GATES: Record<RecurrentCell, number> = { rnnTanh: 1, rnnRelu: 1, lstm: 4, gru: 3 };

/** Inputs of one layer as reference arrays: x, h0, [c0], wIh, wHh, bIh, bHh. */
function layerInputs(cell: RecurrentCell, b: number, t: number, i: number, h: number, seed: number): ND[] {
  const gh = GATES[cell] * h;
  const bound = 1 / Math.sqrt(h);
  const out = [randND([b, t, i], seed), randND([b, h], seed + 1, -0.5, 0.5)];
  if (cell === 'lstm') out.push(randND([b, h], seed + 2, -0.5, 0.5));
  out.push(randND([gh, i], seed + 3, -bound, bound), randND([gh, h], seed + 4, -bound, bound), randND([gh], seed + 5, -bound, bound), randND([gh], seed + 6, -bound, bound));
  return out;
}

type Layer = (cell: RecurrentCell, x: Tensor, h0: Tensor, c0: Tensor | null, w: kiln.RecurrentWeights, reverse: boolean) => RecurrentResult;

/** Calls `layer` on tensors laid out as layerInputs makes them. */
function callWith(layer: Layer, cell: RecurrentCell, ts: Tensor[], reverse: boolean): RecurrentResult {
  const lstm = cell === 'lstm';
  const [x, h0] = ts;
  const [wIh, wHh, bIh, bHh] = ts.slice(lstm ? 3 : 2);
  return layer(cell, x, h0, lstm ? ts[2] : null, { wIh, wHh, bIh, bHh }, reverse);
}

/** Every result in one tensor [B, T + states, H], so one loss covers all of them. */
const packed = (r: RecurrentResult): Tensor => kiln.concat([r.output, r.h.unsqueeze(1), ...(r.c ? [r.c.unsqueeze(1)] : [])], 1);

/** Forward values and the gradients of every input under L = Σ packed · w. */
async function valuesAndGrads(layer: Layer, cell: RecurrentCell, inputs: ND[], reverse: boolean): Promise<number[][]> {
  // The tidy keeps the output and the gradients; they are read asynchronously, then freed.
  const kept = kiln.tidy(() => {
    const leaves = inputs.map((x) => T(x).setRequiresGrad());
    const out = packed(callWith(layer, cell, leaves, reverse));
    const w = T(randND([...out.shape], 123));
    out.mul(w).sum().backward();
    return [out, ...leaves.map((l) => l.grad!)];
  });
  const values = await Promise.all(kept.map((t) => read(t)));
  kiln.dispose(kept);
  return values;
}

forEachBackend(() => {
  it('forward and all gradients match the cells written from primitive ops', async () => {
    const before = kiln.memory().numTensors;
    const names = (cell: RecurrentCell) => ['output', 'x', 'h0', ...(cell === 'lstm' ? ['c0'] : []), 'wIh', 'wHh', 'bIh', 'bHh'];
    let seed = 1;
    for (const cell of CELLS) {
      for (const reverse of [false, true]) {
        for (const [b, t, i, h] of [[3, 5, 4, 6], [8, 7, 16, 33]]) {
          const inputs = layerInputs(cell, b, t, i, h, (seed += 10));
          const fused = await valuesAndGrads(kiln.recurrent, cell, inputs, reverse);
          const reference = await valuesAndGrads(recurrentFromPrimitives, cell, inputs, reverse);
          fused.forEach((got, k) => assertClose(got, reference[k], { atol: 2e-5, rtol: 1e-4 }, `${cell} reverse=${reverse} [${b},${t},${i}]->${h}: ${names(cell)[k]}`));
        }
      }
    }
    expect(kiln.memory().numTensors).toBe(before);
  });

  it('backward matches finite differences for every cell, both directions', async () => {
    for (const cell of CELLS) {
      for (const reverse of [false, true]) {
        const inputs = layerInputs(cell, 2, 3, 2, 2, 500);
        // relu: keep pre-activations off the kink (positive x, weights and biases shifted up).
        const fixed = cell === 'rnnRelu' ? inputs.map((nd, k) => (k === 1 ? nd : uniform(nd.shape, 600 + k, 0.1, 0.6))) : inputs;
        await gradCheck(`${cell} reverse=${reverse}`, fixed, (ts) => packed(callWith(kiln.recurrent, cell, ts, reverse)), { atol: 3e-3, rtol: 3e-3 });
      }
    }
  });

  // The native CPU runs each step's product from W_hh packed once per sequence in panels of 16
  // columns, 8 (AVX-512) or 4 (AVX2) batch rows at a time: these sizes leave a partial panel
  // (hidden not a multiple of 8 or 16), a single batch row, a single step, and rows past the
  // last full block.
  it('backward matches finite differences on odd sizes (batch 1, one step, hidden not a multiple of 8)', async () => {
    let seed = 900;
    for (const cell of ['lstm', 'gru', 'rnnTanh'] as RecurrentCell[]) {
      for (const [b, t, i, h] of [[1, 1, 3, 5], [1, 3, 2, 7], [5, 1, 2, 9], [9, 2, 1, 3]]) {
        const inputs = layerInputs(cell, b, t, i, h, (seed += 10));
        await gradCheck(`${cell} [${b},${t},${i}]->${h}`, inputs, (ts) => packed(callWith(kiln.recurrent, cell, ts, false)), { atol: 3e-3, rtol: 3e-3 });
      }
    }
  });

  // Large enough that the native CPU splits the batch over threads for the whole sequence
  // (19 rows: parts of 9 and 10, neither a multiple of the kernels' row blocks).
  it('a batch split over threads gives the same forward and gradients as the primitive cells', async () => {
    let seed = 1000;
    for (const cell of CELLS) {
      const reverse = cell === 'lstm' || cell === 'rnnRelu';
      const inputs = layerInputs(cell, 19, 24, 5, 53, (seed += 10));
      const fused = await valuesAndGrads(kiln.recurrent, cell, inputs, reverse);
      const reference = await valuesAndGrads(recurrentFromPrimitives, cell, inputs, reverse);
      fused.forEach((got, k) => assertClose(got, reference[k], { atol: 5e-5, rtol: 2e-4 }, `${cell} reverse=${reverse} [19,24,5]->53: result ${k}`));
    }
  });

  it('works without biases and with frozen inputs; gradients go only where needed', async () => {
    const inputs = layerInputs('gru', 2, 4, 3, 5, 700);
    const [x, h0, wIh, wHh] = inputs.map(T);
    wIh.setRequiresGrad();
    wHh.setRequiresGrad();
    const r = kiln.recurrent('gru', x, h0, null, { wIh, wHh });
    r.output.sum().backward();
    expect(x.grad).toBeNull();
    expect(h0.grad).toBeNull();
    const ref = kiln.tidy(() => {
      const [w1, w2] = [T(inputs[2]).setRequiresGrad(), T(inputs[3]).setRequiresGrad()];
      recurrentFromPrimitives('gru', x, h0, null, { wIh: w1, wHh: w2 }).output.sum().backward();
      return [w1.grad!, w2.grad!, w1, w2];
    });
    assertClose(await read(wIh.grad!), await read(ref[0]), { atol: 2e-5, rtol: 1e-4 }, 'dWih');
    assertClose(await read(wHh.grad!), await read(ref[1]), { atol: 2e-5, rtol: 1e-4 }, 'dWhh');
    kiln.dispose([x, h0, wIh, wHh, r.output, r.h, ...ref]);
  });

  it('bad input is an Error naming the cell, the tensor and the shapes', () => {
    const [x, h0, c0, wIh, wHh, bIh, bHh] = layerInputs('lstm', 2, 3, 4, 5, 800).map(T);
    const w = { wIh, wHh, bIh, bHh };
    expectThrows(() => kiln.recurrent('lstm', x.reshape([6, 4]), h0, c0, w), 'lstm', 'x must be [batch, steps, inputSize]', '[6, 4]');
    expectThrows(() => kiln.recurrent('lstm', x, h0, null, w), 'lstm', 'c0');
    expectThrows(() => kiln.recurrent('lstm', x, h0.reshape([5, 2]), c0, w), 'lstm', 'h0 must be [2, 5]', '[5, 2]');
    expectThrows(() => kiln.recurrent('gru', x, h0, null, w), 'gru', 'wHh must be [3 * hiddenSize, hiddenSize]', '[20, 5]');
    expectThrows(() => kiln.recurrent('lstm', x.cast('int32'), h0, c0, w), 'lstm', 'x must be float32', 'int32');
    expectThrows(() => kiln.recurrent('lstm', x, h0, c0, { ...w, wIh: wHh }), 'lstm', 'wIh must be [20, 4]', '[20, 5]');
    expectThrows(() => kiln.recurrent('lstm', x, h0, c0, { ...w, bHh: bIh.slice([0], [7]) }), 'lstm', 'bHh must be [20]', '[7]');
    expectThrows(() => kiln.recurrent('peephole' as RecurrentCell, x, h0, c0, w), "unknown cell 'peephole'", 'lstm', 'gru');
    expectThrows(() => kiln.recurrent('lstm', [1, 2] as unknown as Tensor, h0, c0, w), 'lstm', "'x' must be a Tensor");
    kiln.dispose([x, h0, c0, wIh, wHh, bIh, bHh]);
  });
});
