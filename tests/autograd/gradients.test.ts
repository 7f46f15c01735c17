/**
 * Gradients returned rather than accumulated: kiln.gradients (torch.autograd.grad) and the tfjs-style
 * functional API (grad, grads, valueAndGrad, valueAndGrads). Checked against finite differences and
 * against closed forms; the weights' accumulated gradients must stay untouched.
 */
import { expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { forEachBackend } from '../backends.js';
import { assertClose, expectThrows, read } from '../helpers.js';

/** Central finite differences of a scalar function of a flat array (float64 in JS). */
function numericGrad(f: (x: number[]) => number, x: number[], h = 1e-3): number[] {
  return x.map((_, i) => {
    const plus = [...x];
    const minus = [...x];
    plus[i] += h;
    minus[i] -= h;
    return (f(plus) - f(minus)) / (2 * h);
  });
}

forEachBackend(() => {
  it('gradients(y, [x]) returns dy/dx and leaves every leaf gradient untouched', async () => {
    const w = kiln.tensor([0.5, -1, 2]).setRequiresGrad();
    const x = kiln.tensor([1, 2, 3]).setRequiresGrad();
    const [gx] = kiln.tidy(() => kiln.gradients(x.mul(w).sum(), [x]));
    expect(await read(gx!)).toEqual([0.5, -1, 2]);
    expect(w.grad, 'the weight gets no gradient: its branch is not walked').toBeNull();
    expect(x.grad, 'nothing is accumulated into x either').toBeNull();
    kiln.dispose([w, x, gx!]);
  });

  it('gradients with respect to an intermediate tensor and to an unused input', async () => {
    const x = kiln.tensor([1, -2]).setRequiresGrad();
    const unused = kiln.tensor([7]).setRequiresGrad();
    const out = kiln.tidy(() => {
      const h = x.mul(3); // dy/dh = 2h for y = sum(h^2)
      return kiln.gradients(h.square().sum(), [h, x, unused]);
    });
    expect(await read(out[0]!)).toEqual([6, -12]);
    expect(await read(out[1]!)).toEqual([18, -36]);
    expect(out[2], 'an input y does not depend on gets null').toBeNull();
    kiln.dispose([x, unused, out[0]!, out[1]!]);
  });

  it('grad(f) matches finite differences', async () => {
    const f = (v: number[]) => v.reduce((s, a, i) => s + Math.tanh(a) * a * (i + 1), 0);
    const xs = [0.3, -1.2, 0.8, 2.0];
    const weights = kiln.tensor([1, 2, 3, 4]);
    const g = kiln.grad((x) => x.tanh().mul(x).mul(weights).sum())(kiln.tensor(xs));
    assertClose(await read(g), numericGrad(f, xs), { atol: 1e-4, rtol: 1e-3 }, 'grad(f)');
    kiln.dispose([g, weights]);
  });

  it('valueAndGrads gives the value and one gradient per input; dy weights a non-scalar output', async () => {
    const a = kiln.tensor([1, 2]);
    const b = kiln.tensor([3, 4]);
    const dy = kiln.tensor([1, 10]);
    const { value, grads } = kiln.valueAndGrads((p, q) => p.mul(q))([a, b], dy);
    expect(await read(value)).toEqual([3, 8]);
    expect(await read(grads[0])).toEqual([3, 40]);
    expect(await read(grads[1])).toEqual([1, 20]);
    expect(a.requiresGrad, 'the inputs themselves are not made to require gradients').toBe(false);
    kiln.dispose([a, b, dy, value, ...grads]);
  });

  it('the functional API frees its intermediates', () => {
    const x = kiln.randn([64, 32], { seed: 1 });
    const w = kiln.randn([32, 8], { seed: 2 }).setRequiresGrad();
    const before = kiln.memory().numTensors;
    for (let i = 0; i < 20; i++) kiln.grad((v) => v.matmul(w).relu().sum())(x).dispose();
    expect(kiln.memory().numTensors).toBe(before);
    kiln.dispose([x, w]);
  });

  it('misuse gets clear errors', () => {
    const x = kiln.tensor([1, 2]);
    const y = kiln.tidy(() => x.mul(2).sum());
    expectThrows(() => kiln.gradients(y, [x]), 'gradients', 'does not require gradients');
    expectThrows(() => kiln.grad(() => kiln.scalar(1).mul(1))(x), 'does not depend on input 0');
    expectThrows(() => kiln.grad((v) => v)(kiln.tensor([1, 2], [2], 'int32')), 'float32');
    kiln.dispose([x, y]);
  });
});
