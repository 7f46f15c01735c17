/**
 * Learning-rate schedules against their formulas: StepDecay (StepLR), WarmupCosine (linear
 * warmup then cosine decay, as documented on the class) and ReduceLROnPlateau (PyTorch's rules,
 * replayed in tests/optim/reference.ts, plus hand-worked sequences).
 */
import { expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { optim } from '../../ts/index.js';
import { forEachBackend } from '../backends.js';
import { assertClose, expectThrows } from '../helpers.js';
import { plateauLrs, stepDecayLr } from './reference.js';

const F64 = { atol: 1e-12, rtol: 1e-12, roundExpected: false };

forEachBackend(() => {
  const param = () => kiln.tensor([1]).setRequiresGrad();

  it('StepDecay: lr = base · gamma^floor(epoch / stepSize) after each step; state round trip', () => {
    const p = param();
    const opt = new optim.SGD([p], { lr: 0.4 });
    const s = new optim.StepDecay(opt, 3, 0.5);
    expect(opt.lr, 'before any step').toBe(0.4);
    const got: number[] = [];
    for (let e = 1; e <= 10; e++) {
      s.step();
      got.push(opt.lr);
    }
    assertClose(got, Array.from({ length: 10 }, (_, i) => stepDecayLr(0.4, 3, 0.5, i + 1)), F64);
    assertClose(got.slice(0, 6), [0.4, 0.4, 0.2, 0.2, 0.2, 0.1], F64, 'by hand');
    // a new schedule restored from the state continues the same sequence
    const opt2 = new optim.SGD([p], { lr: 0.4 });
    const s2 = new optim.StepDecay(opt2, 3, 0.5);
    s2.loadState(s.state());
    expect(opt2.lr).toBeCloseTo(stepDecayLr(0.4, 3, 0.5, 10), 12);
    s.step();
    s2.step();
    expect(opt2.lr).toBe(opt.lr);
    // default gamma 0.1
    const opt3 = new optim.SGD([p], { lr: 1 });
    const s3 = new optim.StepDecay(opt3, 2);
    for (let e = 0; e < 4; e++) s3.step();
    expect(opt3.lr).toBeCloseTo(0.01, 12);
    expectThrows(() => new optim.StepDecay(opt, 0), 'StepDecay', 'stepSize');
    p.dispose();
  });

  const [base, warmup, total, minLr] = [0.1, 5, 20, 0.001];
  const cosine = (t: number) => minLr + 0.5 * (base - minLr) * (1 + Math.cos((Math.PI * Math.min(1, (t - warmup) / (total - warmup)))));

  it('WarmupCosine: the warmup phase follows the documented lr(t) = base · t / warmup', () => {
    const p = param();
    const opt = new optim.SGD([p], { lr: base });
    const s = new optim.WarmupCosine(opt, warmup, total, minLr);
    const got = [opt.lr];
    for (let t = 1; t < warmup; t++) {
      s.step();
      got.push(opt.lr);
    }
    assertClose(got, [0, 1, 2, 3, 4].map((t) => (base * t) / warmup), F64, 'lr at t = 0..4');
    p.dispose();
  });

  it('WarmupCosine: the cosine phase at t = warmup (base), warmup + 1, midpoint, total (minLr) and beyond', () => {
    const p = param();
    const opt = new optim.SGD([p], { lr: base });
    const s = new optim.WarmupCosine(opt, warmup, total, minLr);
    const seen = new Map<number, number>([[0, opt.lr]]);
    for (let t = 1; t <= 25; t++) {
      s.step();
      seen.set(t, opt.lr);
    }
    for (const t of [warmup, warmup + 1, 12, 12.5, total - 1, total, total + 5]) {
      const want = cosine(t);
      expect(s.lrAt(t), `lrAt(${t})`).toBeCloseTo(want, 12);
      if (Number.isInteger(t)) expect(seen.get(t), `lr after ${t} steps`).toBeCloseTo(want, 12);
    }
    expect(s.lrAt(warmup), 'the warmup boundary reaches the base lr').toBeCloseTo(base, 12);
    expect(s.lrAt((warmup + total) / 2), 'midpoint: halfway between base and minLr').toBeCloseTo((base + minLr) / 2, 12);
    expect(seen.get(total), 'minLr at total').toBeCloseTo(minLr, 12);
    expect(seen.get(25), 'stays at minLr after total').toBeCloseTo(minLr, 12);
    // the lr never increases after the warmup
    for (let t = warmup + 1; t <= 25; t++) expect(seen.get(t)!).toBeLessThanOrEqual(seen.get(t - 1)! + 1e-15);
    // a restored schedule resumes at the same t
    const opt2 = new optim.SGD([p], { lr: base });
    const s2 = new optim.WarmupCosine(opt2, warmup, total, minLr);
    s2.loadState({ t: 12 });
    expect(opt2.lr).toBeCloseTo(cosine(12), 12);
    expectThrows(() => new optim.WarmupCosine(opt, 10, 10), 'WarmupCosine', 'warmup < total');
    p.dispose();
  });

  it('ReduceLROnPlateau by hand: patience 1, factor 0.5 (min mode)', () => {
    const p = param();
    const opt = new optim.SGD([p], { lr: 1 });
    const s = new optim.ReduceLROnPlateau(opt, { patience: 1, factor: 0.5 });
    const got = [5, 4, 4, 4, 3, 3, 3, 3].map((m) => (s.step(m), opt.lr));
    expect(got).toEqual([1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]);
    p.dispose();
  });

  it('ReduceLROnPlateau by hand: cooldown 2 with patience 0 waits two epochs after each cut', () => {
    const p = param();
    const opt = new optim.SGD([p], { lr: 1 });
    const s = new optim.ReduceLROnPlateau(opt, { patience: 0, factor: 0.5, cooldown: 2 });
    const got = [5, 5, 5, 5, 5, 5, 5, 5].map((m) => (s.step(m), opt.lr));
    expect(got).toEqual([1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]);
    p.dispose();
  });

  it('ReduceLROnPlateau by hand: minLr floor, max mode, relative threshold', () => {
    const p = param();
    const opt = new optim.SGD([p], { lr: 1 });
    const floor = new optim.ReduceLROnPlateau(opt, { patience: 0, factor: 0.1, minLr: 0.05 });
    expect([6, 6, 6, 6].map((m) => (floor.step(m), opt.lr))).toEqual([1, 0.1, 0.05, 0.05]);
    opt.lr = 1;
    const max = new optim.ReduceLROnPlateau(opt, { mode: 'max', patience: 1, factor: 0.5 });
    expect([0.5, 0.6, 0.6, 0.6, 0.7].map((m) => (max.step(m), opt.lr))).toEqual([1, 1, 1, 0.5, 0.5]);
    opt.lr = 1;
    const rel = new optim.ReduceLROnPlateau(opt, { patience: 0, factor: 0.5, threshold: 0.1 });
    // 9.5 and 9.2 are within 10% of the best (10): not improvements; 8 is
    expect([10, 9.5, 9.2, 8].map((m) => (rel.step(m), opt.lr))).toEqual([1, 0.5, 0.25, 0.25]);
    opt.lr = 1;
    const negative = new optim.ReduceLROnPlateau(opt, { patience: 0, factor: 0.5, threshold: 0.1 });
    // relative to |best|: from -10 an improvement must reach below -11
    expect([-10, -10.5, -11.5].map((m) => (negative.step(m), opt.lr))).toEqual([1, 0.5, 0.5]);
    p.dispose();
  });

  const SEQUENCES: Array<{ name: string; metrics: number[]; options: Parameters<typeof plateauLrs>[2] }> = [
    { name: 'min, patience 2, factor 0.5', metrics: [1, 0.9, 0.95, 0.92, 0.91, 0.8, 0.85, 0.86, 0.87, 0.88, 0.7, 0.71, 0.72, 0.73], options: { patience: 2, factor: 0.5 } },
    { name: 'min, patience 1, cooldown 2, minLr 0.02', metrics: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], options: { patience: 1, factor: 0.3, cooldown: 2, minLr: 0.02 } },
    { name: 'max, patience 1, cooldown 1', metrics: [0.1, 0.2, 0.2, 0.19, 0.3, 0.3, 0.3, 0.31, 0.29, 0.28, 0.27], options: { mode: 'max', patience: 1, factor: 0.5, cooldown: 1 } },
    { name: 'min, threshold 0.05', metrics: [2, 1.95, 1.9, 1.8, 1.79, 1.78, 1.5, 1.49], options: { patience: 0, factor: 0.5, threshold: 0.05 } },
  ];

  for (const seq of SEQUENCES) {
    it(`ReduceLROnPlateau matches PyTorch's rules: ${seq.name}`, () => {
      const p = param();
      const opt = new optim.SGD([p], { lr: 0.1 });
      const s = new optim.ReduceLROnPlateau(opt, seq.options);
      const got = seq.metrics.map((m) => (s.step(m), opt.lr));
      assertClose(got, plateauLrs(0.1, seq.metrics, seq.options), F64);
      p.dispose();
    });
  }

  it('ReduceLROnPlateau: state round trip, verbose logs the cut, bad arguments error', () => {
    const p = param();
    const opt = new optim.SGD([p], { lr: 1 });
    const s = new optim.ReduceLROnPlateau(opt, { patience: 1, factor: 0.5 });
    for (const m of [3, 2, 2]) s.step(m);
    const opt2 = new optim.SGD([p], { lr: 1 });
    const s2 = new optim.ReduceLROnPlateau(opt2, { patience: 1, factor: 0.5 });
    s2.loadState(s.state());
    s.step(2);
    s2.step(2);
    expect([opt.lr, opt2.lr]).toEqual([0.5, 0.5]);

    const logs: string[] = [];
    const log = console.log;
    console.log = (m: string) => logs.push(m);
    try {
      const v = new optim.ReduceLROnPlateau(opt, { patience: 0, factor: 0.5, verbose: true });
      v.step(1);
      v.step(1);
    } finally {
      console.log = log;
    }
    expect(logs.join('\n')).toContain('ReduceLROnPlateau');
    expectThrows(() => new optim.ReduceLROnPlateau(opt, { factor: 1 }), 'factor');
    expectThrows(() => s.step(), 'ReduceLROnPlateau', 'metric');
    expectThrows(() => s.step(NaN), 'ReduceLROnPlateau', 'metric');
    p.dispose();
  });
});
