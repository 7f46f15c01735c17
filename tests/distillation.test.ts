/**
 * The distillation loss against a float64 reference written from its definition, its gradient
 * against finite differences, and its two limits (alpha = 0 is cross-entropy; the teacher gets
 * no gradient).
 */
import { expect, it } from 'vitest';
import * as kiln from '../ts/index.js';
import { forEachBackend } from './backends.js';
import { T, Ti, assertClose, expectThrows, randIntND, randND, read } from './helpers.js';
import { gradCheck } from './gradcheck.js';

function softmaxRow(row: number[], t: number): number[] {
  const m = Math.max(...row.map((v) => v / t));
  const e = row.map((v) => Math.exp(v / t - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** alpha T² KL(p_teacher || p_student) (batch mean) + (1 - alpha) CE, in float64. */
function reference(student: number[], teacher: number[], targets: number[], c: number, temperature: number, alpha: number): number {
  const n = targets.length;
  let kl = 0;
  let ce = 0;
  for (let i = 0; i < n; i++) {
    const s = student.slice(i * c, (i + 1) * c);
    const p = softmaxRow(teacher.slice(i * c, (i + 1) * c), temperature);
    const q = softmaxRow(s, temperature);
    for (let j = 0; j < c; j++) kl += p[j] * (Math.log(p[j]) - Math.log(q[j]));
    ce -= Math.log(softmaxRow(s, 1)[targets[i]]);
  }
  return (alpha * temperature * temperature * kl) / n + ((1 - alpha) * ce) / n;
}

forEachBackend(() => {
  for (const [temperature, alpha] of [[4, 0.9], [1, 0.5], [10, 1]]) {
    it(`distillationLoss (T ${temperature}, alpha ${alpha}) matches its definition`, async () => {
      const s = randND([5, 7], 1, -3, 3);
      const t = randND([5, 7], 2, -3, 3);
      const y = randIntND([5], 3, 0, 7);
      const loss = kiln.distillationLoss(T(s), T(t), Ti(y), { temperature, alpha });
      const expected = reference(Array.from(s.data), Array.from(t.data), Array.from(y.data), 7, temperature, alpha);
      assertClose(await read(loss), [expected], { atol: 1e-5, rtol: 1e-4 });
      loss.dispose();
    });
  }

  it('alpha = 0 is plain cross-entropy', async () => {
    const s = T(randND([4, 3], 4));
    const y = Ti(randIntND([4], 5, 0, 3));
    const a = kiln.distillationLoss(s, T(randND([4, 3], 6)), y, { alpha: 0 });
    const b = kiln.crossEntropy(s, y);
    assertClose(await read(a), await read(b), { atol: 1e-6 });
  });

  it('distillationLoss gradient matches finite differences; the teacher gets none', async () => {
    const y = randIntND([3], 7, 0, 4);
    const teacher = randND([3, 4], 8, -2, 2);
    await gradCheck('distillationLoss', [randND([3, 4], 9, -2, 2)], ([s]) => kiln.distillationLoss(s, T(teacher), Ti(y), { temperature: 3, alpha: 0.7 }));
    const tLeaf = T(teacher).setRequiresGrad();
    const sLeaf = T(randND([3, 4], 10)).setRequiresGrad();
    kiln.tidy(() => kiln.distillationLoss(sLeaf, tLeaf, Ti(y)).backward());
    expect(tLeaf.grad, 'teacher logits are detached').toBeNull();
    expect(sLeaf.grad).not.toBeNull();
  });

  it('bad options are named', () => {
    const s = T(randND([2, 3], 1));
    const y = Ti(randIntND([2], 2, 0, 3));
    expectThrows(() => kiln.distillationLoss(s, T(randND([2, 4], 3)), y), 'distillationLoss', '[2, 3]', '[2, 4]');
    expectThrows(() => kiln.distillationLoss(s, s, y, { temperature: 0 }), 'temperature must be a positive number');
    expectThrows(() => kiln.distillationLoss(s, s, y, { alpha: 1.5 }), 'alpha must be in [0, 1]');
  });
});
