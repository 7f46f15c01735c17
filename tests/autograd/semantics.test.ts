/**
 * What autograd promises beyond the per-op gradients: accumulation across backward calls,
 * zeroGrad, detach, noGrad, explicit seeds, and clear errors for misuse. Also checks that the
 * gradient checker itself rejects a wrong gradient.
 */
import { expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { forEachBackend } from '../backends.js';
import { assertClose, expectThrows, read } from '../helpers.js';
import { gradCheck, uniform } from '../gradcheck.js';

forEachBackend(() => {
  it('the gradient checker rejects a wrong gradient (x.detach()·x has gradient x, not 2x)', async () => {
    await expect(gradCheck('wrong', [uniform([3], 1, 0.5, 1)], ([x]) => x.detach().mul(x))).rejects.toThrow(/differ from finite differences/);
  });

  it('gradients accumulate across two backward calls and zeroGrad clears them', async () => {
    const w = kiln.tensor([1, -2, 3]).setRequiresGrad();
    kiln.tidy(() => w.mul(2).sum().backward());
    kiln.tidy(() => w.square().sum().backward());
    const g = w.grad!;
    expect(await read(g)).toEqual([2 + 2, 2 - 4, 2 + 6]);
    w.zeroGrad();
    expect(w.grad, 'grad after zeroGrad').toBeNull();
    kiln.tidy(() => w.mul(3).sum().backward());
    expect(await read(w.grad!), 'a fresh gradient after zeroGrad').toEqual([3, 3, 3]);
    kiln.dispose([w, g]);
  });

  it('t.grad is a new tensor each access, detached from the leaf', async () => {
    const w = kiln.tensor([1, 2]).setRequiresGrad();
    kiln.tidy(() => w.sum().backward());
    const [g1, g2] = [w.grad!, w.grad!];
    expect(g1).not.toBe(g2);
    expect(g1.requiresGrad, 'a gradient does not itself require gradients').toBe(false);
    g1.dispose();
    expect(await read(g2), 'disposing one gradient tensor leaves the accumulated gradient').toEqual([1, 1]);
    kiln.dispose([w, g2]);
  });

  it('grad is null for a leaf before backward, for tensors without requiresGrad and for non-leaves', () => {
    kiln.tidy(() => {
      const w = kiln.tensor([1, 2]).setRequiresGrad();
      expect(w.grad, 'leaf before backward').toBeNull();
      const plain = kiln.tensor([1, 2]);
      expect(plain.grad, 'tensor that never required gradients').toBeNull();
      expect(plain.requiresGrad).toBe(false);
      const y = w.mul(2);
      y.sum().backward();
      expect(y.grad, 'intermediate (non-leaf)').toBeNull();
      expect(kiln.ones([2]).add(plain).grad).toBeNull();
    });
  });

  it('requiresGrad propagates through ops and setRequiresGrad(false) turns a leaf off', () => {
    kiln.tidy(() => {
      const w = kiln.tensor([1, 2]).setRequiresGrad();
      const c = kiln.tensor([3, 4]);
      expect(w.requiresGrad).toBe(true);
      expect(w.add(c).requiresGrad).toBe(true);
      expect(c.add(c).requiresGrad).toBe(false);
      expect(kiln.concat([c, w]).requiresGrad).toBe(true);
      w.setRequiresGrad(false);
      expect(w.requiresGrad).toBe(false);
      expect(w.add(c).requiresGrad).toBe(false);
    });
  });

  it('detach stops gradients and shares the values', async () => {
    const x = kiln.tensor([1, 2, 3]).setRequiresGrad();
    kiln.tidy(() => {
      const d = x.detach();
      expect(d.requiresGrad).toBe(false);
      // d(x.detach() * x)/dx = x, not 2x
      d.mul(x).sum().backward();
    });
    expect(await read(x.grad!)).toEqual([1, 2, 3]);
    kiln.tidy(() => {
      x.zeroGrad();
      const d = kiln.detach(x.mul(5));
      expect(d.requiresGrad).toBe(false);
      expectThrows(() => d.sum().backward(), 'backward', 'does not require gradients');
    });
    expect(x.grad, 'nothing reached x through the detached branch').toBeNull();
    x.dispose();
  });

  it('noGrad records nothing, returns fn’s value, and restores recording (also after a throw)', async () => {
    const w = kiln.tensor([1, 2]).setRequiresGrad();
    const y = kiln.noGrad(() => w.mul(2).exp());
    expect(y.requiresGrad, 'result computed under noGrad').toBe(false);
    expect(w.requiresGrad, 'the leaf itself still requires gradients').toBe(true);
    expectThrows(() => kiln.tidy(() => y.sum().backward()), 'does not require gradients');
    expect(w.grad).toBeNull();
    expect(kiln.noGrad(() => kiln.noGrad(() => 7))).toBe(7);
    expect(() => kiln.noGrad(() => {
      throw new Error('boom');
    })).toThrow('boom');
    kiln.tidy(() => {
      expect(w.mul(2).requiresGrad, 'recording is back on after noGrad').toBe(true);
    });
    // nested: the inner call restores the outer (off) state
    kiln.noGrad(() => {
      kiln.noGrad(() => undefined);
      const z = w.mul(3);
      expect(z.requiresGrad, 'still off in the outer noGrad after an inner one returns').toBe(false);
      z.dispose();
    });
    kiln.dispose([w, y]);
  });

  it('backward with an explicit gradient for a non-scalar output', async () => {
    const x = kiln.tensor([[1, 2], [3, 4]]).setRequiresGrad();
    kiln.tidy(() => x.square().backward(kiln.tensor([[1, 0], [0.5, -1]])));
    assertClose(await read(x.grad!), [2, 0, 3, -8]);
    kiln.tidy(() => kiln.backward(x.mul(2), kiln.ones([2, 2])));
    assertClose(await read(x.grad!), [4, 2, 5, -6]);
    x.dispose();
  });

  it('backward on a non-scalar without a gradient errors clearly', () => {
    kiln.tidy(() => {
      const x = kiln.tensor([1, 2, 3]).setRequiresGrad();
      expectThrows(() => x.mul(2).backward(), 'backward', 'non-scalar', '[3]');
      // a one-element tensor of any rank needs none
      x.slice([1], [1]).reshape([1, 1]).backward();
      expectThrows(() => x.mul(2).backward(kiln.ones([2])), 'backward', '[2]', '[3]');
    });
  });

  it('a second backward through the same graph errors clearly', () => {
    kiln.tidy(() => {
      const x = kiln.tensor([1, 2, 3]).setRequiresGrad();
      const loss = x.exp().sum();
      loss.backward();
      expectThrows(() => loss.backward(), 'backward', 'already used');
    });
  });

  it('backward on a tensor that does not require gradients errors clearly', () => {
    kiln.tidy(() => {
      expectThrows(() => kiln.tensor(3).backward(), 'backward', 'does not require gradients');
    });
  });

  it('int32 and bool tensors cannot require gradients', () => {
    kiln.tidy(() => {
      expectThrows(() => kiln.tensor(new Int32Array([1, 2])).setRequiresGrad(), 'float32', 'int32');
      expectThrows(() => kiln.tensor([true, false]).setRequiresGrad(), 'float32', 'bool');
    });
  });

  it('a shared subexpression (diamond) sums both paths: d(x² + x)/dx = 2x + 1', async () => {
    const x = kiln.tensor([0.5, -1, 2]).setRequiresGrad();
    kiln.tidy(() => {
      const s = x.square();
      s.add(x).add(s.mul(0)).sum().backward();
    });
    assertClose(await read(x.grad!), [2, -1, 5]);
    x.dispose();
  });

  it('a parameter used in two losses summed gets both gradients (one backward)', async () => {
    const w = kiln.tensor([1, 2]).setRequiresGrad();
    kiln.tidy(() => kiln.add(w.mul(3).sum(), w.square().sum()).backward());
    assertClose(await read(w.grad!), [5, 7]);
    w.dispose();
  });

  it('an explicit gradient: a non-contiguous one works; an int32 one errors naming backward', async () => {
    const x = kiln.tensor([[1, 2], [3, 4]]).setRequiresGrad();
    kiln.tidy(() => x.mul(1).backward(kiln.tensor([[1, 2], [3, 4]]).transpose()));
    expect(await read(x.grad!)).toEqual([1, 3, 2, 4]);
    kiln.tidy(() => {
      expectThrows(() => x.mul(2).backward(kiln.tensor(new Int32Array([1, 1, 1, 1]), [2, 2])), 'backward', 'float32', 'int32');
    });
    x.dispose();
  });

  it('the saved forward values survive an in-place optimizer update before backward (copy-on-write)', async () => {
    const w = kiln.tensor([1, 2, 3]).setRequiresGrad();
    const opt = new kiln.optim.SGD([w], { lr: 1 });
    const loss = w.square().sum();
    kiln.tidy(() => w.sum().backward());
    opt.step();
    expect(await read(w)).toEqual([0, 1, 2]);
    w.zeroGrad();
    loss.backward();
    expect(await read(w.grad!), 'd(w²)/dw at the forward-time w').toEqual([2, 4, 6]);
    kiln.dispose([w, loss]);
    opt.dispose();
  });

  it('a plain sum (the upstream gradient is a broadcast view) gives the same gradients as a weighted one', async () => {
    const cases: Array<[string, (x: kiln.Tensor) => kiln.Tensor]> = [
      ['crossEntropy none', (x) => kiln.crossEntropy(x, kiln.tensor(new Int32Array([0, 1, 3]), [3]), { reduction: 'none', labelSmoothing: 0.1 })],
      ['softmax', (x) => x.softmax().mul(kiln.tensor([1, 2, 3, 4]))],
      ['gather', (x) => x.gather(kiln.tensor(new Int32Array([1, 1]), [2]), 1)],
      ['pad', (x) => x.pad([[1, 1], [0, 2]])],
      ['max', (x) => x.max(1)],
      ['matmul', (x) => x.matmul(x.transpose())],
    ];
    for (const [name, f] of cases) {
      const x = kiln.tensor(Float32Array.from({ length: 12 }, (_, i) => ((i * 5) % 12) * 0.1), [3, 4]).setRequiresGrad();
      const plain = kiln.tidy(() => {
        f(x).sum().backward();
        return x.grad!;
      });
      x.zeroGrad();
      const weighted = kiln.tidy(() => {
        const out = f(x);
        out.mul(kiln.full([...out.shape], 1)).sum().backward();
        return x.grad!;
      });
      assertClose(await read(plain), await read(weighted), { atol: 0, rtol: 0 }, name);
      kiln.dispose([x, plain, weighted]);
    }
  });

  it('assign overwrites values in place: identity and requiresGrad kept, earlier snapshots and graphs unchanged', async () => {
    const w = kiln.tensor([1, 2, 3]).setRequiresGrad();
    const snapshot = w.detach();
    const view = w.reshape([3, 1]);
    const loss = w.square().sum();
    const start = kiln.memory();
    const source = kiln.tensor([4, 5, 6]);
    expect(kiln.assign(w, source)).toBe(w);
    source.dispose();
    expect(kiln.memory().numTensors, 'assign adds no tensor handle').toBe(start.numTensors);
    expect(await read(w)).toEqual([4, 5, 6]);
    expect(w.requiresGrad).toBe(true);
    expect(await read(snapshot), 'a detached snapshot keeps the old values').toEqual([1, 2, 3]);
    expect(await read(view), 'a view taken before keeps the old values').toEqual([1, 2, 3]);
    loss.backward();
    expect(await read(w.grad!), 'a graph recorded before the assign uses the forward-time values').toEqual([2, 4, 6]);
    w.zeroGrad();
    kiln.tidy(() => w.square().sum().backward());
    expect(await read(w.grad!), 'and new graphs use the new values').toEqual([8, 10, 12]);
    kiln.tidy(() => {
      expectThrows(() => kiln.assign(w, kiln.tensor([1, 2])), 'assign', '[3]', '[2]');
      expectThrows(() => kiln.assign(w, kiln.tensor(new Int32Array([1, 2, 3]))), 'assign', 'int32', 'float32');
    });
    kiln.dispose([w, snapshot, view, loss]);
  });

  it('assign takes any dtype the target has: int32 values replaced, earlier snapshots unchanged', async () => {
    const ids = kiln.tensor(new Int32Array([1, 2, 3]));
    const snapshot = ids.detach();
    kiln.tidy(() => kiln.assign(ids, kiln.tensor(new Int32Array([7, -8, 9]))));
    expect(ids.dtype).toBe('int32');
    expect(await read(ids)).toEqual([7, -8, 9]);
    expect(await read(snapshot)).toEqual([1, 2, 3]);
    kiln.tidy(() => expectThrows(() => kiln.assign(ids, kiln.tensor([1, 2, 3])), 'assign', 'float32 [3] to int32 [3]'));
    kiln.dispose([ids, snapshot]);
  });
});
