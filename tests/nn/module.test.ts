/**
 * Module basics: parameter discovery and naming, counting, train/eval, freeze, zeroGrad,
 * setParameter, dispose, user-defined composition and summary().
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import * as kiln from '../../ts/index.js';
import * as nn from '../../ts/nn/index.js';
import type { Tensor } from '../../ts/index.js';
import { forEachBackend } from '../backends.js';
import { assertClose, expectThrows, read } from '../helpers.js';

/** A user module: two Linears, a residual connection, nested blocks in an array. */
class TwoLinear extends nn.Module {
  readonly a = new nn.Linear(3, 3, { seed: 1 });
  readonly b = new nn.Linear(3, 3, { seed: 2 });
  forward(x: Tensor): Tensor {
    return x.add(this.b.forward(this.a.forward(x).relu()));
  }
}

class Net extends nn.Module {
  readonly embed = new nn.Linear(4, 3, { seed: 3 });
  readonly blocks = [new TwoLinear(), new TwoLinear()];
  readonly norm = new nn.BatchNorm1d(3);
  readonly drop = new nn.Dropout(0.5);
  readonly head = new nn.Sequential(new nn.Linear(3, 2, { seed: 4 }), new nn.Tanh());
  forward(x: Tensor): Tensor {
    let h = this.embed.forward(x);
    for (const blk of this.blocks) h = blk.forward(h);
    return this.head.forward(this.drop.forward(this.norm.forward(h)));
  }
}

forEachBackend(() => {
  let start: ReturnType<typeof kiln.memory>;
  beforeEach(() => {
    start = kiln.memory();
  });
  afterEach(() => {
    expect(kiln.memory().numTensors, 'every test disposes its modules').toBe(start.numTensors);
  });

  describe('parameters', () => {
    it('counts the 784-512-10 MLP: 401,920 + 5,130 = 407,050', () => {
      const model = new nn.Sequential(new nn.Linear(784, 512), new nn.ReLU(), new nn.Linear(512, 10));
      expect(model.numParameters()).toBe(407_050);
      expect(model.parameters().map((p) => p.size)).toEqual([784 * 512, 512, 5120, 10]);
      expect(model.parameters().every((p) => p.requiresGrad && p.kept)).toBe(true);
      model.dispose();
    });

    it('names parameters and buffers with dotted paths in declaration order', () => {
      const net = new Net();
      expect(net.namedParameters().map(([n]) => n)).toEqual([
        'embed.weight', 'embed.bias',
        'blocks.0.a.weight', 'blocks.0.a.bias', 'blocks.0.b.weight', 'blocks.0.b.bias',
        'blocks.1.a.weight', 'blocks.1.a.bias', 'blocks.1.b.weight', 'blocks.1.b.bias',
        'norm.weight', 'norm.bias',
        'head.0.weight', 'head.0.bias',
      ]);
      expect(net.namedBuffers().map(([n]) => n)).toEqual(['norm.runningMean', 'norm.runningVar']);
      expect(Object.keys(net.stateDict())).toEqual([
        ...net.namedParameters().slice(0, 10).map(([n]) => n),
        'norm.weight', 'norm.bias', 'norm.runningMean', 'norm.runningVar',
        'head.0.weight', 'head.0.bias',
      ]);
      expect(net.namedModules().map(([n]) => n)).toEqual(['', 'embed', 'blocks.0', 'blocks.0.a', 'blocks.0.b', 'blocks.1', 'blocks.1.a', 'blocks.1.b', 'norm', 'drop', 'head', 'head.0', 'head.1']);
      // the order is stable: a second walk gives the same tensors
      expect(net.parameters()).toEqual(net.parameters());
      expect(net.numParameters()).toBe(15 + 4 * 12 + 6 + 8);
      net.dispose();
    });

    it('lists a shared (tied) module or tensor once, under its first name', () => {
      const shared = new nn.Linear(2, 2);
      const model = new nn.Sequential(shared, new nn.ReLU(), shared);
      expect(model.namedParameters().map(([n]) => n)).toEqual(['0.weight', '0.bias']);
      model.dispose();

      // a tensor tied into a second module: listed once; replacing it keeps both modules tied
      const tied = new nn.Sequential(new nn.Linear(2, 2), new nn.Linear(2, 2));
      const [enc, dec] = tied.layers as nn.Linear[];
      dec.weight.dispose();
      (dec as { weight: Tensor }).weight = enc.weight;
      expect(tied.namedParameters().map(([n]) => n)).toEqual(['0.weight', '0.bias', '1.bias']);
      kiln.noGrad(() => tied.setParameter('0.weight', enc.weight.mul(2)));
      expect(dec.weight).toBe(enc.weight);
      expect(enc.weight.isDisposed).toBe(false);
      tied.dispose();
    });

    it('composes in plain TypeScript and back-propagates through every parameter', () => {
      const net = new Net();
      kiln.tidy(() => {
        net.forward(kiln.randn([5, 4], { seed: 1 })).square().sum().backward();
        for (const [name, p] of net.namedParameters()) expect(p.grad, name).not.toBeNull();
      });
      net.dispose();
    });
  });

  describe('modes', () => {
    it('train() / eval() switch every descendant', () => {
      const net = new Net();
      expect(net.namedModules().every(([, m]) => m.training)).toBe(true);
      expect(net.eval()).toBe(net);
      expect(net.namedModules().every(([, m]) => !m.training)).toBe(true);
      net.head.train();
      expect(net.head.training && net.head.layers[0].training && !net.training && !net.norm.training).toBe(true);
      net.train();
      expect(net.namedModules().every(([, m]) => m.training)).toBe(true);
      net.dispose();
    });

    it('eval mode is deterministic (Dropout off, BatchNorm on running stats); training is not', async () => {
      const net = new Net();
      const x = kiln.randn([8, 4], { seed: 2 });
      net.eval();
      const twice = () => kiln.noGrad(() => kiln.tidy(() => [net.forward(x), net.forward(x)]));
      const [e1, e2] = twice();
      expect(await read(e1)).toEqual(await read(e2));
      net.train();
      const [t1, t2] = twice();
      expect(await read(t1)).not.toEqual(await read(t2));
      kiln.dispose([x, e1, e2, t1, t2]);
      net.dispose();
    });
  });

  describe('freeze, zeroGrad, setParameter', () => {
    it('frozen parameters get no gradient; the others do; unfreeze restores training', () => {
      const model = new nn.Sequential(new nn.Linear(3, 4, { seed: 1 }), new nn.ReLU(), new nn.Linear(4, 2, { seed: 2 }));
      const first = model.layers[0] as nn.Linear;
      const ids = model.parameters();
      expect(first.freeze()).toBe(first);
      expect(model.parameters()).toEqual(ids); // same Tensor objects
      expect(first.weight.requiresGrad).toBe(false);
      expect(model.numParameters({ trainableOnly: true })).toBe(10);
      const step = () => kiln.tidy(() => model.forward(kiln.randn([5, 3], { seed: 3 })).square().sum().backward());
      step();
      expect(first.weight.grad).toBeNull();
      expect(first.bias!.grad).toBeNull();
      kiln.tidy(() => {
        expect((model.layers[2] as nn.Linear).weight.grad).not.toBeNull();
      });
      first.unfreeze();
      model.zeroGrad();
      step();
      kiln.tidy(() => {
        for (const [name, p] of model.namedParameters()) expect(p.grad, name).not.toBeNull();
      });
      model.zeroGrad();
      expect(model.parameters().every((p) => p.grad === null)).toBe(true);
      model.dispose();
    });

    it('setParameter replaces the tensor, keeps it, makes it a leaf and keeps requiresGrad / frozen state', async () => {
      const lin = new nn.Linear(2, 2, { seed: 1 });
      const old = lin.weight;
      kiln.tidy(() => {
        // inside a tidy, from an op on the parameter itself (a graph node): the module takes it over
        lin.setParameter('weight', old.mul(2));
      });
      expect(old.isDisposed).toBe(true);
      expect(lin.weight.isDisposed).toBe(false);
      expect(lin.weight.kept && lin.weight.requiresGrad).toBe(true);
      expect(lin.namedParameters()[0][1]).toBe(lin.weight);
      kiln.tidy(() => lin.forward(kiln.ones([1, 2])).sum().backward());
      const g = lin.weight.grad!;
      expect(await read(g)).toEqual([1, 1, 1, 1]);
      g.dispose();
      lin.bias!.setRequiresGrad(false);
      lin.setParameter('bias', kiln.zeros([2]));
      expect(lin.bias!.requiresGrad, 'a frozen parameter stays frozen').toBe(false);
      kiln.tidy(() => {
        expectThrows(() => lin.setParameter('weight', kiln.zeros([3, 2])), "Linear.setParameter: 'weight' is float32 [2, 2], the new value is float32 [3, 2]");
        expectThrows(() => lin.setParameter('nope', kiln.zeros([2])), "no parameter named 'nope'", 'known: weight, bias');
        expectThrows(() => lin.setParameter('weight', kiln.zeros([2, 2], 'int32')), 'float32 [2, 2], the new value is int32 [2, 2]');
      });
      lin.dispose();
    });

    it('dispose() frees every parameter and buffer; a user tidy never frees them', () => {
      const before = kiln.memory().numTensors;
      let net!: Net;
      kiln.tidy(() => {
        net = new Net();
        kiln.noGrad(() => net.forward(kiln.ones([2, 4])));
      });
      // built inside the tidy, yet its 14 parameters and 2 buffers are alive; the intermediates are not
      expect(kiln.memory().numTensors - before).toBe(16);
      expect([...net.parameters(), ...net.buffers()].every((t) => !t.isDisposed)).toBe(true);
      net.dispose();
      expect(kiln.memory().numTensors).toBe(before);
      expect(net.parameters().every((p) => p.isDisposed)).toBe(true);
    });
  });

  describe('summary', () => {
    it("shows the MLP's layers, output shapes, 401,920 and the 407,050 total", () => {
      const model = new nn.Sequential(new nn.Linear(784, 512), new nn.ReLU(), new nn.Linear(512, 10));
      const log = vi.spyOn(console, 'log').mockImplementation(() => {});
      const before = kiln.memory();
      const text = model.summary([784]);
      expect(kiln.memory(), 'summary frees what it makes').toEqual(before);
      expect(log).toHaveBeenCalledWith(text);
      log.mockRestore();
      expect(text).toContain('401,920');
      expect(text).toContain('Total params: 407,050');
      expect(text).toContain('Trainable params: 407,050');
      const lines = text.split('\n');
      expect(lines.find((l) => l.startsWith('0 (Linear)'))).toMatch(/\[1, 512\]\s+401,920$/);
      expect(lines.find((l) => l.startsWith('1 (ReLU)'))).toMatch(/\[1, 512\]\s+0$/);
      expect(lines.find((l) => l.startsWith('2 (Linear)'))).toMatch(/\[1, 10\]\s+5,130$/);
      expect(model.summary([784], { print: false })).toBe(text);
      model.dispose();
    });

    it('works on user modules, restores training flags and does not touch BatchNorm running stats', async () => {
      const net = new Net();
      net.drop.eval();
      const forwardBefore = net.embed.forward;
      const text = net.summary([4], { print: false, batchSize: 2 });
      expect(text).toMatch(/blocks\.0 \(TwoLinear\)\s+\[2, 3\]\s+24/);
      expect(text).toMatch(/ {2}blocks\.0\.a \(Linear\)\s+\[2, 3\]\s+12/);
      expect(text).toMatch(/head\.1 \(Tanh\)\s+\[2, 2\]\s+0/);
      expect(text).toContain('Non-trainable params: 0');
      expect(text).toContain('Buffer elements: 6');
      expect(net.training && net.norm.training && !net.drop.training).toBe(true);
      // summary wraps each forward for one pass and puts back exactly what was there (every
      // module has its own, error-naming forward: ts/named-errors.ts).
      expect(net.embed.forward).toBe(forwardBefore);
      expect(Object.keys(net.embed)).not.toContain('forward');
      assertClose(await read(net.norm.runningMean), [0, 0, 0]);
      assertClose(await read(net.norm.runningVar), [1, 1, 1]);
      net.freeze();
      expect(net.summary([4], { print: false })).toContain('Non-trainable params: 77');
      const emb = new nn.Sequential(new nn.Embedding(10, 4), new nn.Flatten());
      expect(emb.summary([3], { print: false, dtype: 'int32' })).toMatch(/1 \(Flatten\)\s+\[1, 12\]\s+0/);
      net.dispose();
      emb.dispose();
    });
  });
});
