/**
 * State: stateDict / loadStateDict (round trip, shape and key errors, identity and requiresGrad
 * kept), the in-place write behind them (kiln.assign), and their interplay with Kiln's
 * optimizers, which key their state by the parameter Tensor.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import * as nn from '../../ts/nn/index.js';
import { forEachBackend } from '../backends.js';
import { assertClose, assertEqual, expectThrows, read } from '../helpers.js';

const mlp = (seed: number) =>
  new nn.Sequential(new nn.Linear(3, 5, { seed }), new nn.BatchNorm1d(5), new nn.ReLU(), new nn.Linear(5, 2, { seed: seed + 100 }));

forEachBackend(() => {
  let start: ReturnType<typeof kiln.memory>;
  beforeEach(() => {
    start = kiln.memory();
  });
  afterEach(() => {
    expect(kiln.memory().numTensors, 'every test frees what it makes').toBe(start.numTensors);
  });

  describe('stateDict / loadStateDict', () => {
    it('round trip: the loaded model computes what the source computes; tensors keep identity and requiresGrad', async () => {
      const a = mlp(1);
      const b = mlp(2);
      // give a's BatchNorm non-trivial running stats
      kiln.tidy(() => {
        a.forward(kiln.randn([16, 3], { seed: 5 }));
      });
      b.layers[3].freeze();
      const before = b.stateDict();
      const x = kiln.randn([4, 3], { seed: 6 });
      a.eval();
      b.eval();
      const [ya, yb0] = kiln.noGrad(() => kiln.tidy(() => [a.forward(x), b.forward(x)]));
      expect(await read(ya)).not.toEqual(await read(yb0));

      const result = b.loadStateDict(a.stateDict());
      expect(result).toEqual({ missingKeys: [], unexpectedKeys: [] });
      const after = b.stateDict();
      for (const k of Object.keys(before)) expect(after[k], `${k} keeps its Tensor object`).toBe(before[k]);
      expect(b.parameters().map((p) => p.requiresGrad)).toEqual([true, true, true, true, false, false]);
      for (const [k, t] of Object.entries(a.stateDict())) assertEqual(await read(after[k]), await read(t), k);
      const yb = kiln.noGrad(() => kiln.tidy(() => b.forward(x)));
      assertEqual(await read(yb), await read(ya), 'outputs after loading');
      // the source is untouched and still owned by a
      expect(Object.values(a.stateDict()).every((t) => !t.isDisposed)).toBe(true);
      kiln.dispose([x, ya, yb0, yb]);
      a.dispose();
      b.dispose();
    });

    it('a shape mismatch names the key and both shapes, and loads nothing', async () => {
      const a = mlp(1);
      const wide = new nn.Sequential(new nn.Linear(3, 6), new nn.BatchNorm1d(6), new nn.ReLU(), new nn.Linear(6, 2));
      const snapshot = await read(a.stateDict()['0.bias']);
      const err = expectThrows(
        () => a.loadStateDict(wide.stateDict()),
        'Sequential.loadStateDict: nothing was loaded',
        "'0.weight' is float32 [6, 3] in the state dict but float32 [5, 3] in the module",
        "'3.weight' is float32 [2, 6] in the state dict but float32 [2, 5] in the module",
      );
      expect(err.message).toContain("'1.runningMean' is float32 [6]");
      expect(await read(a.stateDict()['0.bias'])).toEqual(snapshot);
      a.dispose();
      wide.dispose();
    });

    it('strict mode names missing and unexpected keys; strict: false loads the common ones', async () => {
      const a = mlp(1);
      const lin = new nn.Linear(3, 5, { seed: 9 });
      const partial = { '0.weight': lin.weight, '0.bias': lin.bias!, 'extra.weight': lin.weight };
      expectThrows(() => a.loadStateDict(partial), 'missing keys: 1.weight, 1.bias, 1.runningMean, 1.runningVar, 3.weight, 3.bias', 'unexpected keys: extra.weight');
      const r = a.loadStateDict(partial, { strict: false });
      expect(r.unexpectedKeys).toEqual(['extra.weight']);
      expect(r.missingKeys).toHaveLength(6);
      assertEqual(await read(a.stateDict()['0.weight']), await read(lin.weight));
      kiln.tidy(() => {
        expectThrows(() => a.loadStateDict({ ...a.stateDict(), '0.bias': kiln.zeros([5], 'int32') }), "'0.bias' is int32 [5] in the state dict but float32 [5] in the module");
      });
      a.dispose();
      lin.dispose();
    });

    it('loading into a parameter that holds Inf/NaN overwrites it in place', async () => {
      const lin = new nn.Linear(2, 2, { seed: 1 });
      const good = new nn.Linear(2, 2, { seed: 2 });
      kiln.noGrad(() => lin.setParameter('weight', kiln.tensor([[1, NaN], [Infinity, 2]])));
      const weight = lin.weight;
      lin.loadStateDict(good.stateDict());
      assertEqual(await read(lin.weight), await read(good.weight));
      expect(lin.weight.requiresGrad).toBe(true);
      expect(lin.weight, 'the parameter keeps its identity').toBe(weight);
      lin.dispose();
      good.dispose();
    });
  });

  describe('in-place writes', () => {
    it('assign copies exactly (specials included), keeps the object, requiresGrad and gradient; sharers keep the old values', async () => {
      const p = kiln.keep(kiln.tensor([1, 2, 3, 4, 5]).setRequiresGrad());
      kiln.tidy(() => p.mul(kiln.tensor([1, 1, 1, 1, 2])).sum().backward());
      const snapshot = p.detach(); // shares p's buffer
      const values = [Infinity, -0, NaN, 1e-40, -3.5e38].map(Math.fround);
      kiln.tidy(() => kiln.assign(p, kiln.tensor(values)));
      assertEqual(await read(p), values);
      expect(p.requiresGrad).toBe(true);
      const g = p.grad!;
      expect(await read(g)).toEqual([1, 1, 1, 1, 2]);
      expect(await read(snapshot)).toEqual([1, 2, 3, 4, 5]);
      // a non-contiguous source works; a target holding NaN is overwritten; mismatches throw
      const q = kiln.keep(kiln.zeros([2, 3]));
      kiln.tidy(() => kiln.assign(q, kiln.tensor([[1, 2], [3, 4], [5, 6]]).transpose()));
      expect(await read(q)).toEqual([1, 3, 5, 2, 4, 6]);
      kiln.tidy(() => kiln.assign(p, kiln.zeros([5])));
      expect(await read(p)).toEqual([0, 0, 0, 0, 0]);
      kiln.tidy(() => {
        expectThrows(() => kiln.assign(q, kiln.zeros([3, 2])), 'assign: cannot assign float32 [3, 2] to float32 [2, 3]');
      });
      kiln.dispose([p, q, g, snapshot]);
    });
  });

  describe('with Kiln optimizers', () => {
    it('optimizer steps update parameters in place, and keep working after loadStateDict', async () => {
      const model = mlp(3);
      const best = mlp(4);
      const ids = model.parameters();
      const opt = new kiln.optim.Adam(model.parameters(), { lr: 1e-2 });
      const x = kiln.randn([8, 3], { seed: 1 });
      const y = kiln.tensor(new Int32Array([0, 1, 0, 1, 1, 0, 0, 1]));
      const step = () =>
        kiln.tidy(() => {
          opt.zeroGrad();
          const loss = kiln.crossEntropy(model.forward(x), y);
          loss.backward();
          opt.step();
        });
      step();
      expect(model.parameters()).toEqual(ids);
      model.loadStateDict(best.stateDict()); // as EarlyStopping's restore does
      const w = await read(model.parameters()[0]);
      step();
      expect(model.parameters()).toEqual(ids);
      expect(await read(model.parameters()[0]), 'the optimizer still updates the live weights').not.toEqual(w);
      opt.dispose();
      kiln.dispose([x, y]);
      model.dispose();
      best.dispose();
    });
  });
});
