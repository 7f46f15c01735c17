/**
 * Checks of the reference module itself (tests/reference.ts), so that a failure elsewhere points
 * at Kiln rather than at the yardstick: known constants, and agreement with tfjs.
 */
import { describe, expect, it } from 'vitest';
import * as ref from './reference.js';
import { assertClose, randND } from './helpers.js';
import { tf, tfEval, tfT } from './tf.js';

describe('reference module', () => {
  it('erf/erfc/gelu match tabulated values', () => {
    const table: Array<[(x: number) => number, number, number]> = [
      [ref.erf, 0.5, 0.5204998778130465],
      [ref.erf, 1, 0.8427007929497149],
      [ref.erf, 2, 0.9953222650189527],
      [ref.erf, 3, 0.9999779095030014],
      [ref.erf, -1.5, -0.9661051464753108],
      [ref.erfc, 3, 2.209049699858544e-5],
      [ref.erfc, 5, 1.5374597944280349e-12],
      [ref.erfc, 10, 2.088487583762545e-45],
      [ref.erfc, -2, 1.9953222650189528],
      [ref.Phi, -5, 2.866515718791939e-7],
      [ref.gelu, 1, 0.8413447460685429],
      [ref.gelu, -1, -0.15865525393145707],
    ];
    for (const [f, x, want] of table) {
      expect(Math.abs(f(x) - want), `${f.name}(${x})`).toBeLessThanOrEqual(1e-14 * Math.abs(want) + 1e-300);
    }
    expect(ref.gelu(-Infinity)).toBe(0);
    expect(ref.gelu(Infinity)).toBe(Infinity);
  });

  it('broadcasting and reductions agree with tfjs', () => {
    const a = randND([2, 1, 3], 1);
    const b = randND([4, 1], 2);
    const sum = ref.zip(a, b, (x, y) => x + y);
    const want = tfEval(() => tf.add(tfT(a), tfT(b)));
    expect(sum.shape).toEqual(want.shape);
    assertClose(sum.data, want.data, { atol: 1e-6 }, 'add');
    const x = randND([3, 4, 5], 3);
    const r = ref.reduce(x, [0, 2], true, ref.sum);
    const wr = tfEval(() => tf.sum(tfT(x), [0, 2], true));
    expect(r.shape).toEqual(wr.shape);
    assertClose(r.data, wr.data, { atol: 1e-5 }, 'sum');
    const sm = ref.softmax(x, 1);
    const wsm = tfEval(() => tf.transpose(tf.softmax(tf.transpose(tfT(x), [0, 2, 1])), [0, 2, 1]));
    assertClose(sm.data, wsm.data, { atol: 1e-6 }, 'softmax');
  });

  it('matmul, permute, gather, concat and pad agree with tfjs', () => {
    const a = randND([2, 3, 4], 4);
    const b = randND([2, 5, 4], 5);
    const mm = ref.matmul(a, b, false, true);
    const wmm = tfEval(() => tf.matMul(tfT(a), tfT(b), false, true));
    expect(mm.shape).toEqual(wmm.shape);
    assertClose(mm.data, wmm.data, { atol: 1e-5 }, 'matmul');
    const p = ref.permute(a, [2, 0, 1]);
    const wp = tfEval(() => tf.transpose(tfT(a), [2, 0, 1]));
    expect(p.shape).toEqual(wp.shape);
    assertClose(p.data, wp.data, { atol: 0 }, 'permute');
    const idx = { shape: [2, 2], data: [3, 0, 1, 1] };
    const g = ref.gather(a, idx, 2);
    const wg = tfEval(() => tf.gather(tfT(a), tf.tensor(idx.data, idx.shape, 'int32'), 2));
    expect(g.shape).toEqual(wg.shape);
    assertClose(g.data, wg.data, { atol: 0 }, 'gather');
    const c = ref.concat([a, randND([2, 1, 4], 6)], 1);
    const wc = tfEval(() => tf.concat([tfT(a), tfT(randND([2, 1, 4], 6))], 1));
    assertClose(c.data, wc.data, { atol: 0 }, 'concat');
    const pd = ref.pad(a, [[1, 0], [0, 2], [1, 1]], 7);
    const wpd = tfEval(() => tf.pad(tfT(a), [[1, 0], [0, 2], [1, 1]], 7));
    expect(pd.shape).toEqual(wpd.shape);
    assertClose(pd.data, wpd.data, { atol: 0 }, 'pad');
  });
});
