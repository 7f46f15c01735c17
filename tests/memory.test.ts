/**
 * Lifetimes: tidy/keep/dispose, memory() accounting, and THE MEMORY TEST (10,000 tidy'd training-
 * like iterations leave the live tensor and byte counts exactly where they were).
 *
 * Every test here frees what it makes, so memory() is exact from test to test.
 */
import { afterEach, beforeEach, expect, it } from 'vitest';
import * as kiln from '../ts/index.js';
import type { Tensor } from '../ts/index.js';
import { forEachBackend, heavyIt } from './backends.js';
import { read } from './helpers.js';

type Mem = ReturnType<typeof kiln.memory>;
const delta = (a: Mem, b: Mem) => ({ numTensors: b.numTensors - a.numTensors, numBuffers: b.numBuffers - a.numBuffers, numBytes: b.numBytes - a.numBytes });

forEachBackend((backend) => {
  const heavy = heavyIt(backend);
  let start: Mem;
  beforeEach(() => {
    start = kiln.memory();
  });
  afterEach(() => {
    // no test in this file may leave anything behind
    expect(kiln.memory(), 'memory after the test').toEqual(start);
  });

  it('memory() counts tensors, buffers and bytes per dtype; views share their buffer', () => {
    const m0 = kiln.memory();
    const a = kiln.zeros([10, 10]);
    expect(delta(m0, kiln.memory())).toEqual({ numTensors: 1, numBuffers: 1, numBytes: 400 });
    const i = kiln.zeros([5], 'int32');
    const b = kiln.zeros([7], 'bool');
    expect(delta(m0, kiln.memory())).toEqual({ numTensors: 3, numBuffers: 3, numBytes: 400 + 20 + 7 });
    const m1 = kiln.memory();
    const row = a.slice([0, 0], [1, 10]);
    // reshape of a contiguous tensor, transpose, slice, expand, unsqueeze are views; contiguous() of a
    // contiguous tensor and clone() share the buffer (as documented)
    const views = [a.reshape([100]), a.transpose(), a.slice([2, 2], [3, 3]), row, row.expand([4, 10]), a.unsqueeze(0), a.contiguous(), a.clone()];
    expect(delta(m1, kiln.memory()), 'views add handles, not buffers').toEqual({ numTensors: views.length, numBuffers: 0, numBytes: 0 });
    const t = a.transpose();
    const copy = t.contiguous();
    expect(delta(m1, kiln.memory()), 'contiguous copy of a transposed view').toEqual({ numTensors: views.length + 2, numBuffers: 1, numBytes: 400 });
    // the buffer lives as long as any view of it
    a.dispose();
    expect(delta(m0, kiln.memory())).toEqual({ numTensors: 2 + views.length + 2, numBuffers: 4, numBytes: 400 + 20 + 7 + 400 });
    kiln.dispose(views);
    expect(delta(m0, kiln.memory()).numBytes, 'the transposed view t still holds the buffer').toBe(400 + 20 + 7 + 400);
    kiln.dispose([t, copy, i, b]);
    expect(kiln.memory()).toEqual(m0);
  });

  it('tidy disposes intermediates and keeps the returned tensor', async () => {
    const before = kiln.memory();
    let x!: Tensor;
    let y!: Tensor;
    const z = kiln.tidy(() => {
      x = kiln.ones([4]);
      y = x.exp();
      return y.add(1);
    });
    expect(x.isDisposed).toBe(true);
    expect(y.isDisposed).toBe(true);
    expect(z.isDisposed).toBe(false);
    // Close, not exact: the GPU's exp differs from the CPU's in the last bits.
    for (const v of await read(z)) expect(v).toBeCloseTo(Math.E + 1, 5);
    expect(delta(before, kiln.memory())).toEqual({ numTensors: 1, numBuffers: 1, numBytes: 16 });
    z.dispose();
  });

  it('tidy keeps tensors returned in arrays and objects, and frees the rest', () => {
    const before = kiln.memory();
    const made: Tensor[] = [];
    const out = kiln.tidy(() => {
      const t = (n: number) => {
        const r = kiln.full([n], n);
        made.push(r);
        return r;
      };
      const a = t(1);
      t(2);
      const c = t(3);
      const d = t(4);
      t(5);
      return { a, nested: [c, { d }], n: 3, s: 'x', nothing: null };
    });
    expect(made.map((t) => t.isDisposed)).toEqual([false, true, false, false, true]);
    expect(out.n).toBe(3);
    expect(delta(before, kiln.memory()).numTensors).toBe(3);
    kiln.dispose(out as unknown as kiln.TensorContainer);
    expect(kiln.memory()).toEqual(before);
  });

  it('tidy returning nothing, a number or split results', async () => {
    const before = kiln.memory();
    expect(kiln.tidy(() => void kiln.ones([3]).add(1))).toBeUndefined();
    expect(kiln.tidy(() => kiln.ones([3]).size)).toBe(3);
    expect(kiln.memory()).toEqual(before);
    const parts = kiln.tidy(() => kiln.ones([4, 2]).mul(2).split(2));
    expect(parts.map((p) => p.isDisposed)).toEqual([false, false]);
    expect((await read(parts[1]))[0]).toBe(2);
    kiln.dispose(parts);
    expect(kiln.memory()).toEqual(before);
  });

  it('nested tidy moves the inner result to the outer scope', async () => {
    const before = kiln.memory();
    let inner!: Tensor;
    let innerTemp!: Tensor;
    const outer = kiln.tidy(() => {
      inner = kiln.tidy(() => {
        innerTemp = kiln.ones([2]);
        return innerTemp.add(1);
      });
      expect(innerTemp.isDisposed).toBe(true);
      expect(inner.isDisposed).toBe(false);
      return inner.mul(3);
    });
    // inner was not returned by the outer tidy, so the outer one freed it
    expect(inner.isDisposed).toBe(true);
    expect(outer.isDisposed).toBe(false);
    expect(await read(outer)).toEqual([6, 6]);
    outer.dispose();
    expect(kiln.memory()).toEqual(before);
    // ... and if the outer tidy returns it, it survives both
    const survivor = kiln.tidy(() => kiln.tidy(() => kiln.ones([2]).neg()));
    expect(survivor.isDisposed).toBe(false);
    survivor.dispose();
    expect(kiln.memory()).toEqual(before);
  });

  it('keep() survives every enclosing tidy; dispose still frees it', async () => {
    const before = kiln.memory();
    let kept!: Tensor;
    let keptDeep!: Tensor;
    kiln.tidy(() => {
      kept = kiln.keep(kiln.ones([3]).mul(2));
      kiln.tidy(() => {
        keptDeep = kiln.keep(kiln.ones([2]));
        kiln.ones([9]);
      });
    });
    expect(kept.isDisposed).toBe(false);
    expect(keptDeep.isDisposed).toBe(false);
    expect(await read(kept)).toEqual([2, 2, 2]);
    expect(delta(before, kiln.memory()).numTensors).toBe(2);
    kept.dispose();
    keptDeep.dispose();
    expect(kiln.memory()).toEqual(before);
  });

  it('tensors from outside a tidy are left alone, even when returned', () => {
    const outside = kiln.ones([3]);
    const before = kiln.memory();
    const r = kiln.tidy(() => {
      outside.add(1);
      return outside;
    });
    expect(r).toBe(outside);
    expect(outside.isDisposed).toBe(false);
    expect(kiln.memory()).toEqual(before);
    outside.dispose();
  });

  it('exceptions inside tidy still clean up, and propagate', () => {
    const before = kiln.memory();
    let made!: Tensor;
    expect(() =>
      kiln.tidy(() => {
        made = kiln.ones([5]).exp();
        kiln.add(made, kiln.zeros([4])); // shape error from Kiln
      }),
    ).toThrow(/add/);
    expect(made.isDisposed).toBe(true);
    expect(kiln.memory()).toEqual(before);
    // an exception in a nested tidy, caught by the outer function
    const r = kiln.tidy(() => {
      const a = kiln.ones([2]);
      try {
        kiln.tidy(() => {
          kiln.ones([100]);
          throw new Error('boom');
        });
      } catch (e) {
        expect((e as Error).message).toBe('boom');
      }
      return a.add(1);
    });
    expect(delta(before, kiln.memory()).numTensors).toBe(1);
    r.dispose();
    expect(kiln.memory()).toEqual(before);
  });

  it('a view returned from tidy outlives the disposed tensor it views', async () => {
    const before = kiln.memory();
    const v = kiln.tidy(() => kiln.tensor([[1, 2, 3], [4, 5, 6]]).mul(2).transpose().slice([1, 0], [2, 2]));
    expect(await read(v)).toEqual([4, 10, 6, 12]);
    expect(delta(before, kiln.memory()).numTensors).toBe(1);
    v.dispose();
    expect(kiln.memory()).toEqual(before);
  });

  it('tidy tolerates a returned object graph with a cycle', () => {
    const before = kiln.memory();
    let result: { t?: Tensor; self?: unknown } = {};
    expect(() => {
      result = kiln.tidy(() => {
        const o: { t: Tensor; self?: unknown } = { t: kiln.ones([2]) };
        kiln.ones([3]);
        o.self = o;
        return o as unknown as kiln.TensorContainer;
      }) as typeof result;
    }).not.toThrow();
    expect(result.t?.isDisposed).toBe(false);
    result.t?.dispose();
    expect(kiln.memory()).toEqual(before);
  });

  it('tidy rejects an async function without leaking what it made', () => {
    const before = kiln.memory();
    expect(() =>
      kiln.tidy((async () => {
        kiln.ones([8]);
      }) as unknown as () => void),
    ).toThrow(/tidy/);
    expect(kiln.memory()).toEqual(before);
  });

  it('dispose and tidy together never double-free', () => {
    const before = kiln.memory();
    kiln.tidy(() => {
      const a = kiln.ones([4]);
      a.dispose();
      a.dispose();
      const b = a.isDisposed ? kiln.zeros([2]) : a;
      kiln.dispose([b, b]);
    });
    expect(kiln.memory()).toEqual(before);
  });

  // A soak: ~200,000 kernel launches, about 50 s on lavapipe natively and 4.6 min in a page (where
  // each op also waits on WebGPU error scopes), so heavy on a software adapter; there the
  // 2,000-iteration test below and the MNIST run's flat buffer pool (tests/gpu/device.test.ts)
  // check the same accounting.
  heavy('THE MEMORY TEST: 10,000 tidy iterations leave numTensors and numBytes exactly as before', async () => {
    const x = kiln.randn([8, 16], { seed: 1 });
    const w = kiln.randn([16, 12], { seed: 2 });
    const bias = kiln.randn([12], { seed: 3 });
    const idx = kiln.tensor(Int32Array.from([0, 3, 3, 7]));
    const step = () =>
      kiln.tidy(() => {
        const h = kiln.matmul(x, w).add(bias).relu();
        const logits = h.mul(0.5).sub(1); // number operands become temporary scalars
        const loss = kiln.logSoftmax(logits, -1).mean().neg();
        const picked = kiln.gather(h, idx, 0).sum(0); // int indices, reductions
        const view = h.transpose().slice([0, 0], [4, 4]).reshape([16]); // views and a copy
        const masked = kiln.where(h.greater(0), h, 0).max();
        const [l, r] = h.split(2, 1);
        return loss.add(picked.sum()).add(view.mean()).add(masked).add(kiln.concat([l, r], 0).min());
      });
    const first = step();
    first.dispose();
    const before = kiln.memory();
    let last = 0;
    for (let i = 0; i < 10_000; i++) {
      const out = step();
      if (i === 9_999) last = (await read(out))[0];
      out.dispose();
    }
    const after = kiln.memory();
    expect(after.numTensors).toBe(before.numTensors);
    expect(after.numBytes).toBe(before.numBytes);
    expect(after.numBuffers).toBe(before.numBuffers);
    expect(Number.isFinite(last)).toBe(true);
    kiln.dispose([x, w, bias, idx]);
  }, 180_000);

  it('memory stays flat with explicit dispose instead of tidy', () => {
    const a = kiln.ones([32, 32]);
    const before = kiln.memory();
    for (let i = 0; i < 2_000; i++) {
      const b = a.matmul(a);
      const c = b.add(1);
      const d = c.softmax(0);
      const e = d.sum();
      kiln.dispose([b, c, d, e]);
    }
    expect(kiln.memory()).toEqual(before);
    a.dispose();
  });
});
