/**
 * The recurrent cells written from primitive ops (matmul, sigmoid, tanh, relu, mul, add, slice,
 * stack), one time step at a time, straight from PyTorch's equations. The fused `kiln.recurrent`
 * must agree with it in the forward pass and, through ordinary autograd of these primitives, in
 * every gradient.
 */
import * as kiln from '../ts/index.js';
import type { RecurrentCell, RecurrentResult, RecurrentWeights, Tensor } from '../ts/index.js';

/** Same contract as kiln.recurrent: x [B, T, I], h0 (c0) [B, H] -> output [B, T, H], h, c. */
export function recurrentFromPrimitives(cell: RecurrentCell, x: Tensor, h0: Tensor, c0: Tensor | null, w: RecurrentWeights, reverse = false): RecurrentResult {
  const [batch, steps, input] = x.shape;
  const hidden = w.wHh.shape[1];
  const gate = (m: Tensor, k: number) => m.slice([0, k * hidden], [batch, hidden]);
  const project = (v: Tensor, weight: Tensor, bias: Tensor | null | undefined) => {
    const p = kiln.matmul(v, weight, false, true);
    return bias ? p.add(bias) : p;
  };
  let h = h0;
  let c = c0;
  const outputs: Tensor[] = new Array(steps);
  for (let s = 0; s < steps; s++) {
    const t = reverse ? steps - 1 - s : s;
    const xt = x.slice([0, t, 0], [batch, 1, input]).reshape([batch, input]);
    const xp = project(xt, w.wIh, w.bIh);
    const hp = project(h, w.wHh, w.bHh);
    if (cell === 'rnnTanh') h = xp.add(hp).tanh();
    else if (cell === 'rnnRelu') h = xp.add(hp).relu();
    else if (cell === 'lstm') {
      const i = gate(xp, 0).add(gate(hp, 0)).sigmoid();
      const f = gate(xp, 1).add(gate(hp, 1)).sigmoid();
      const g = gate(xp, 2).add(gate(hp, 2)).tanh();
      const o = gate(xp, 3).add(gate(hp, 3)).sigmoid();
      c = f.mul(c!).add(i.mul(g));
      h = o.mul(c.tanh());
    } else {
      const r = gate(xp, 0).add(gate(hp, 0)).sigmoid();
      const z = gate(xp, 1).add(gate(hp, 1)).sigmoid();
      const n = gate(xp, 2).add(r.mul(gate(hp, 2))).tanh();
      // (1 - z) n + z h
      h = n.sub(z.mul(n)).add(z.mul(h));
    }
    outputs[t] = h;
  }
  const result: RecurrentResult = { output: kiln.stack(outputs, 1), h };
  if (cell === 'lstm') result.c = c!;
  return result;
}
