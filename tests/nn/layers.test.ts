/** Dropout, Embedding, the activation modules, Flatten, Sequential and Residual. */
import { describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import * as nn from '../../ts/nn/index.js';
import type { Tensor } from '../../ts/index.js';
import { forEachBackend } from '../backends.js';
import { assertClose, expectThrows, randND, read, T, expectEveryTestToFreeItsTensors } from '../helpers.js';

forEachBackend(() => {
  expectEveryTestToFreeItsTensors();

  describe('Dropout', () => {
    it('is the identity in eval mode (the same tensor, no copy) and for p = 0', () => {
      const d = new nn.Dropout(0.3).eval();
      const x = kiln.ones([10]);
      expect(d.forward(x)).toBe(x);
      expect(new nn.Dropout(0).forward(x)).toBe(x);
      x.dispose();
    });

    it('training: zeroes a fraction ≈ p, scales survivors by 1/(1 − p), keeps the mean', async () => {
      kiln.setSeed(1234);
      const n = 200_000;
      for (const p of [0.1, 0.5, 0.8]) {
        const d = new nn.Dropout(p);
        const y = kiln.tidy(() => d.forward(kiln.ones([n])));
        const v = await read(y);
        const zeros = v.filter((e) => e === 0).length / n;
        expect(Math.abs(zeros - p), `fraction zeroed for p=${p}`).toBeLessThan(0.01);
        const scaled = Math.fround(1 / (1 - p));
        expect(v.filter((e) => e !== 0 && e !== scaled), 'survivors are exactly 1/(1 − p)').toEqual([]);
        expect(Math.abs(v.reduce((a, b) => a + b, 0) / n - 1), `mean for p=${p}`).toBeLessThan(0.02);
        y.dispose();
      }
    });

    it('back-propagates through the same mask', async () => {
      const d = new nn.Dropout(0.5);
      const [y, g] = kiln.tidy(() => {
        const x = kiln.ones([1000]).setRequiresGrad();
        const out = d.forward(x);
        out.sum().backward();
        return [out.detach(), x.grad!];
      });
      expect(await read(g)).toEqual(await read(y));
      kiln.dispose([y, g]);
    });

    it('validates p', () => {
      for (const p of [1, -0.1, NaN, 2]) expectThrows(() => new nn.Dropout(p), `Dropout: p must be in [0, 1), got ${p}`);
    });
  });

  describe('Embedding', () => {
    it('looks up rows: int32 [...] -> [..., dim]; the gradient counts uses per row', async () => {
      const emb = new nn.Embedding(4, 3, { seed: 1 });
      const table = [[0, 1, 2], [10, 11, 12], [20, 21, 22], [30, 31, 32]];
      kiln.tidy(() => {
        emb.loadStateDict({ weight: kiln.tensor(table) });
      });
      const y = kiln.tidy(() => {
        const out = emb.forward(kiln.tensor(new Int32Array([0, 2, 2, 3]), [2, 2]));
        out.sum().backward();
        return out;
      });
      expect([...y.shape]).toEqual([2, 2, 3]);
      expect(await read(y)).toEqual([0, 1, 2, 20, 21, 22, 20, 21, 22, 30, 31, 32]);
      const g = emb.weight.grad!;
      expect(await read(g)).toEqual([1, 1, 1, 0, 0, 0, 2, 2, 2, 1, 1, 1]);
      kiln.tidy(() => {
        expectThrows(() => emb.forward(kiln.tensor(new Int32Array([1, 4]))), 'gather', 'out of range');
        expectThrows(() => emb.forward(kiln.tensor([1, 2])), 'gather', 'int32');
      });
      kiln.dispose([y, g]);
      emb.dispose();
    });

    it('initializes N(0, 1) by default', async () => {
      const emb = new nn.Embedding(100, 50, { seed: 2 });
      const v = await read(emb.weight);
      const std = Math.sqrt(v.reduce((a, b) => a + b * b, 0) / v.length);
      expect(std).toBeCloseTo(1, 1);
      emb.dispose();
    });
  });

  describe('activations', () => {
    it('match their formulas', async () => {
      const xs = [-3, -1, -0.5, 0, 0.5, 1, 3];
      const erf = (z: number) => {
        // Abramowitz-Stegun 7.1.26 is not precise enough; integrate with a fine Simpson rule instead.
        const n = 2000;
        const h = z / n;
        let s = 0;
        for (let i = 0; i <= n; i++) s += (i === 0 || i === n ? 1 : i % 2 ? 4 : 2) * Math.exp(-((i * h) ** 2));
        return ((s * h) / 3) * (2 / Math.sqrt(Math.PI));
      };
      const cases: Array<[nn.Module, (x: number) => number]> = [
        [new nn.ReLU(), (x) => Math.max(x, 0)],
        [new nn.LeakyReLU(), (x) => (x > 0 ? x : 0.01 * x)],
        [new nn.LeakyReLU(0.2), (x) => (x > 0 ? x : 0.2 * x)],
        [new nn.ELU(), (x) => (x > 0 ? x : Math.exp(x) - 1)],
        [new nn.ELU(0.5), (x) => (x > 0 ? x : 0.5 * (Math.exp(x) - 1))],
        [new nn.GELU(), (x) => 0.5 * x * (1 + erf(x / Math.SQRT2))],
        [new nn.GELU('tanh'), (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)))],
        [new nn.Sigmoid(), (x) => 1 / (1 + Math.exp(-x))],
        [new nn.Tanh(), Math.tanh],
        [new nn.Softplus(), (x) => Math.log1p(Math.exp(x))],
        [new nn.Softplus(2), (x) => Math.log1p(Math.exp(2 * x)) / 2],
      ];
      for (const [m, f] of cases) {
        const y = kiln.tidy(() => m.forward(kiln.tensor(xs)));
        assertClose(await read(y), xs.map(f), { atol: 1e-5, rtol: 1e-5 }, m.constructor.name);
        y.dispose();
      }
    });

    it('Softmax / LogSoftmax along an axis', async () => {
      const x = randND([2, 3], 3);
      const [s0, l1] = kiln.tidy(() => [new nn.Softmax(0).forward(T(x)), new nn.LogSoftmax().forward(T(x))]);
      const col = (c: number) => [x.data[c], x.data[3 + c]];
      const want0 = x.data.map((v, i) => Math.exp(v) / col(i % 3).reduce((a, b) => a + Math.exp(b), 0));
      assertClose(await read(s0), want0);
      const row = (r: number) => x.data.slice(3 * r, 3 * r + 3);
      const want1 = x.data.map((v, i) => v - Math.log(row(Math.floor(i / 3)).reduce((a, b) => a + Math.exp(b), 0)));
      assertClose(await read(l1), want1);
      kiln.dispose([s0, l1]);
    });
  });

  describe('Flatten, Sequential, Residual', () => {
    it('Flatten keeps the batch dim by default; start/end dims select the range', () => {
      const shapes = kiln.tidy(() => {
        const x = kiln.zeros([2, 3, 4, 5]);
        return [new nn.Flatten(), new nn.Flatten(0), new nn.Flatten(1, 2), new nn.Flatten(-2)].map((f) => [...f.forward(x).shape]);
      });
      expect(shapes).toEqual([[2, 60], [120], [2, 12, 5], [2, 3, 20]]);
      kiln.tidy(() => {
        expectThrows(() => new nn.Flatten(3, 1).forward(kiln.zeros([2, 3, 4, 5])), 'Flatten(startDim 3, endDim 1): invalid');
      });
    });

    it('Sequential chains, appends, names children by index and rejects non-modules', async () => {
      const seq = new nn.Sequential(new nn.Linear(2, 3, { seed: 1 }), new nn.ReLU());
      seq.append(new nn.Linear(3, 1, { seed: 2 }));
      expect(seq.length).toBe(3);
      expect(Object.keys(seq.stateDict())).toEqual(['0.weight', '0.bias', '2.weight', '2.bias']);
      const [a, b] = kiln.tidy(() => {
        const x = kiln.tensor([[1, -2]]);
        const manual = (seq.layers[2] as nn.Linear).forward((seq.layers[0] as nn.Linear).forward(x).relu());
        return [seq.forward(x), manual];
      });
      expect(await read(a)).toEqual(await read(b));
      expectThrows(() => new nn.Sequential(new nn.ReLU(), {} as nn.Module), 'Sequential: argument 1 is not a Module');
      kiln.dispose([a, b]);
      seq.dispose();
    });

    it('Residual adds its input', async () => {
      const body = new nn.Linear(2, 2, { seed: 3 });
      const res = new nn.Residual(body);
      expect(res.namedParameters().map(([n]) => n)).toEqual(['body.weight', 'body.bias']);
      const [y, fx] = kiln.tidy((): Tensor[] => {
        const x = kiln.tensor([[1, 2]]);
        return [res.forward(x), body.forward(x).add(x)];
      });
      expect(await read(y)).toEqual(await read(fx));
      kiln.dispose([y, fx]);
      res.dispose();
    });
  });
});
