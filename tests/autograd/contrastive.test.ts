/**
 * NT-Xent (SimCLR's contrastive loss): its value equals a float64 reference written from the
 * paper's definition (cosine similarities / τ, each anchor's softmax over the 2N - 1 others, the
 * other view the positive), its gradients with respect to both views match finite differences,
 * and bad input is an error naming ntXent.
 */
import { expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { forEachBackend } from '../backends.js';
import { gradCheck, uniform } from '../gradcheck.js';
import type { ND } from '../reference.js';
import { readOf } from '../helpers.js';

/** The loss from its definition, in float64: mean over anchors of -log softmax(sim_i / τ)[positive(i)]. */
function ntXentReference(z1: ND, z2: ND, temperature: number): number {
  const [n, d] = z1.shape as [number, number];
  const rows = [...Array(2 * n)].map((_, i) => (i < n ? z1 : z2).data.slice((i % n) * d, (i % n + 1) * d));
  const unit = rows.map((r) => {
    const norm = Math.hypot(...r);
    return r.map((v) => v / norm);
  });
  let total = 0;
  for (let i = 0; i < 2 * n; i++) {
    const positive = (i + n) % (2 * n);
    const logits = unit.map((u, j) => (j === i ? -Infinity : u.reduce((s, v, k) => s + v * unit[i]![k]!, 0) / temperature));
    const top = Math.max(...logits);
    const logZ = top + Math.log(logits.reduce((s, l) => s + Math.exp(l - top), 0));
    total += logZ - logits[positive]!;
  }
  return total / (2 * n);
}

forEachBackend(() => {
  const z1 = uniform([4, 3], 11);
  const z2 = uniform([4, 3], 12);
  const t = (x: ND) => kiln.tensor(Float32Array.from(x.data), [...x.shape]);

  it('ntXent equals the float64 reference for several temperatures', async () => {
    for (const temperature of [0.1, 0.5, 1]) {
      const [value] = await readOf(() => kiln.ntXent(t(z1), t(z2), { temperature }));
      expect(value).toBeCloseTo(ntXentReference(z1, z2, temperature), 4);
    }
  });

  it('ntXent: gradients wrt both views match finite differences', async () => {
    await gradCheck('ntXent(τ 0.5)', [z1, z2], ([a, b]) => kiln.ntXent(a!, b!));
    await gradCheck('ntXent(τ 0.2)', [uniform([3, 5], 13), uniform([3, 5], 14)], ([a, b]) => kiln.ntXent(a!, b!, { temperature: 0.2 }), { atol: 5e-3, rtol: 5e-3 });
  });

  it('ntXent is low when the views agree and the examples differ, high when the views are unrelated', async () => {
    const eye = kiln.eye(4);
    const [aligned] = await readOf(() => kiln.ntXent(eye, eye, { temperature: 0.1 }));
    // positives orthogonal to their anchors and as close as any negative: no better than chance
    const [shuffled] = await readOf(() => kiln.ntXent(eye, kiln.tensor([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]), { temperature: 0.1 }));
    expect(aligned).toBeLessThan(0.01);
    expect(shuffled).toBeGreaterThan(Math.log(2));
    eye.dispose();
  });

  it('ntXent rejects mismatched views, too small a batch and a bad temperature, naming ntXent', () => {
    kiln.tidy(() => {
      expect(() => kiln.ntXent(kiln.zeros([4, 3]), kiln.zeros([4, 2]))).toThrow(/ntXent: .*\[4, 3\] float32 .*\[4, 2\] float32/);
      expect(() => kiln.ntXent(kiln.zeros([4, 3]), kiln.zeros([4, 3], 'int32'))).toThrow(/ntXent: .*int32/);
      expect(() => kiln.ntXent(kiln.zeros([1, 3]), kiln.zeros([1, 3]))).toThrow(/ntXent: needs at least 2 examples/);
      expect(() => kiln.ntXent(kiln.zeros([2, 3]), kiln.zeros([2, 3]), { temperature: 0 })).toThrow(/ntXent: temperature/);
    });
  });
});
