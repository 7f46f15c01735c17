/**
 * Autograd must not leak: a graph's saved tensors are freed by the backward walk or with the
 * last tensor referring to them, and a leaf's accumulated gradient is freed by zeroGrad.
 */
import { expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import type { Tensor } from '../../ts/index.js';
import { forEachBackend } from '../backends.js';
import { T, Ti } from '../helpers.js';
import { uniform } from '../gradcheck.js';
import { nd } from '../reference.js';

forEachBackend(() => {
  it('1,000 forward+backward iterations in tidy keep memory() flat (zeroGrad each iteration)', async () => {
    const params = [T(uniform([4, 8], 1)), T(uniform([8], 2)), T(uniform([8, 3], 3))].map((p) => p.setRequiresGrad());
    const x = T(uniform([16, 4], 4));
    const y = Ti(nd([16], Array.from({ length: 16 }, (_, i) => i % 3)));
    const start = kiln.memory();
    let afterFirst = start;
    for (let i = 0; i < 1000; i++) {
      const sums = kiln.tidy(() => {
        for (const p of params) p.zeroGrad();
        const [w1, b1, w2] = params;
        const h = x.matmul(w1).add(b1).relu();
        const logits = h.matmul(w2).slice([0, 0], [16, 3]).reshape([16, 3]);
        const loss = kiln.add(kiln.crossEntropy(logits, y, { labelSmoothing: 0.1 }), kiln.mse(h.mean(1), kiln.zeros([16])));
        loss.backward();
        // reading the gradients makes new tensors; tidy frees the handles, dispose the sums
        return params.map((p) => p.grad!.sum());
      });
      await Promise.all(sums.map((t) => t.data()));
      kiln.dispose(sums);
      if (i === 0) afterFirst = kiln.memory();
      else if (i % 100 === 99) expect(kiln.memory(), `memory after iteration ${i + 1}`).toEqual(afterFirst);
    }
    for (const p of params) p.zeroGrad();
    expect(kiln.memory(), 'memory after zeroGrad of every parameter').toEqual(start);
    kiln.dispose([...params, x, y]);
  });

  it('a forward graph that is never walked is freed with its tensors', () => {
    const w = T(uniform([32, 32], 5)).setRequiresGrad();
    const start = kiln.memory();
    for (let i = 0; i < 200; i++) {
      kiln.tidy(() => {
        w.matmul(w).tanh().sum().mul(2);
      });
    }
    expect(kiln.memory()).toEqual(start);
    // a result kept past its tidy keeps its graph alive until it is disposed
    const kept = kiln.tidy(() => w.matmul(w).tanh().sum());
    expect(kiln.memory().numBuffers).toBeGreaterThan(start.numBuffers + 1);
    kept.dispose();
    expect(kiln.memory()).toEqual(start);
    w.dispose();
  });

  it('a failed second backward and a failed non-scalar backward leak nothing', () => {
    const w = T(uniform([8], 6)).setRequiresGrad();
    const start = kiln.memory();
    for (let i = 0; i < 50; i++) {
      kiln.tidy(() => {
        const loss = w.exp().sum();
        loss.backward();
        expect(() => loss.backward()).toThrow();
        expect(() => w.mul(2).backward()).toThrow();
      });
      w.zeroGrad();
    }
    expect(kiln.memory()).toEqual(start);
    w.dispose();
  });

  it('disposing a leaf frees its accumulated gradient', () => {
    const start = kiln.memory();
    const w: Tensor = T(uniform([64], 7)).setRequiresGrad();
    kiln.tidy(() => w.square().sum().backward());
    w.dispose();
    expect(kiln.memory()).toEqual(start);
  });
});
