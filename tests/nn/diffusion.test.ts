/**
 * DDPM: the schedule, forward noising q(x_t | x_0), x_0 recovery and posterior mean against a
 * float64 computation written here from the paper's formulas (with its own β recursion), the
 * timestep embedding against its formula, input errors, and a learning test on 2-D points: a
 * trained denoiser's samples land on the data (both nearest-neighbour directions, so collapse to
 * part of it fails), while sampling the same network with the noise sign flipped or with another
 * schedule does not.
 */
import { describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import * as nn from '../../ts/nn/index.js';
import type { Tensor } from '../../ts/index.js';
import { forEachBackend } from '../backends.js';
import { assertClose, expectThrows, prng, read, readOf } from '../helpers.js';

const T = 50;
/** ᾱ_t for the default linear schedule of T steps, in float64, from the definitions. */
function alphaBarRef(t: number): number {
  if (t < 0) return 1;
  const start = 1e-4 * 1000 / T;
  const end = 0.02 * 1000 / T;
  let product = 1;
  for (let s = 0; s <= t; s++) product *= 1 - (start + (end - start) * s / (T - 1));
  return product;
}
const betaRef = (t: number) => 1 - alphaBarRef(t) / alphaBarRef(t - 1);

function randomValues(n: number, seed: number): Float32Array {
  const next = prng(seed);
  return Float32Array.from({ length: n }, () => 2 * next() - 1);
}

/** Points on a circle of radius 2 with a little noise, [n, 2]. */
function circle(n: number, next: () => number): Float32Array {
  const out = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    const angle = 2 * Math.PI * next();
    const r = 2 + 0.05 * (next() - 0.5);
    out[2 * i] = r * Math.cos(angle);
    out[2 * i + 1] = r * Math.sin(angle);
  }
  return out;
}

/** Mean distance from each point of a to the nearest of b. */
function meanNearest(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let total = 0;
  for (let i = 0; i < a.length; i += 2) {
    let best = Infinity;
    for (let j = 0; j < b.length; j += 2) best = Math.min(best, (a[i] - b[j]) ** 2 + (a[i + 1] - b[j + 1]) ** 2);
    total += Math.sqrt(best);
  }
  return total / (a.length / 2);
}

forEachBackend((backend) => {
  describe('DDPMSchedule', () => {
    const schedule = nn.DDPMSchedule.linear(T);
    const steps = [0, 1, 17, 30, T - 1];
    const shape = [steps.length, 3];
    const x0v = randomValues(15, 1);
    const noisev = randomValues(15, 2);
    const xtv = randomValues(15, 3);

    it('the linear schedule matches the β recursion, and ᾱ_T is near zero', () => {
      for (let t = 0; t < T; t++) {
        expect(schedule.betas[t]).toBeCloseTo(betaRef(t), 12);
        expect(schedule.alphaBars[t]).toBeCloseTo(alphaBarRef(t), 12);
      }
      expect(schedule.alphaBars[T - 1]).toBeLessThan(1e-3);
    });

    it('qSample is √ᾱ_t x_0 + √(1 - ᾱ_t) ε per example (float64 reference)', async () => {
      const qSample = () => schedule.qSample(kiln.tensor(x0v, shape), steps, kiln.tensor(noisev, shape));
      const expected = Array.from(x0v, (x, i) => {
        const ab = alphaBarRef(steps[Math.floor(i / 3)]);
        return Math.sqrt(ab) * x + Math.sqrt(1 - ab) * noisev[i];
      });
      assertClose(await readOf(qSample), expected, { atol: 1e-6, rtol: 1e-5 });
      // predictX0 inverts it given the same noise.
      assertClose(await readOf(() => schedule.predictX0(qSample(), steps, kiln.tensor(noisev, shape))), x0v, { atol: 1e-3, rtol: 1e-3 });
    });

    it('posteriorMean is the Gaussian posterior mean, and with x̂_0(ε) equals 1/√α (x_t - β/√(1-ᾱ) ε)', async () => {
      {
        const mean = await readOf(() => schedule.posteriorMean(kiln.tensor(x0v, shape), kiln.tensor(xtv, shape), steps));
        const expected = Array.from(x0v, (x, i) => {
          const t = steps[Math.floor(i / 3)];
          const ab = alphaBarRef(t);
          const abPrev = alphaBarRef(t - 1);
          const beta = betaRef(t);
          return (Math.sqrt(abPrev) * beta / (1 - ab)) * x + (Math.sqrt(1 - beta) * (1 - abPrev) / (1 - ab)) * xtv[i];
        });
        assertClose(mean, expected, { atol: 1e-6, rtol: 1e-5 });
        // Ho et al.'s ε-form of the same mean (their eq. 11).
        const viaX0 = await readOf(() => {
          const xt = kiln.tensor(xtv, shape);
          return schedule.posteriorMean(schedule.predictX0(xt, steps, kiln.tensor(noisev, shape)), xt, steps);
        });
        const epsForm = Array.from(xtv, (x, i) => {
          const t = steps[Math.floor(i / 3)];
          return (x - betaRef(t) / Math.sqrt(1 - alphaBarRef(t)) * noisev[i]) / Math.sqrt(1 - betaRef(t));
        });
        assertClose(viaX0, epsForm, { atol: 1e-4, rtol: 1e-4 });
        for (const t of steps) expect(schedule.posteriorVariance(t)).toBeCloseTo((1 - alphaBarRef(t - 1)) / (1 - alphaBarRef(t)) * betaRef(t), 12);
      }
    });

    it('noisyBatch draws its steps on the host (no device read) in 0..T-1, and xt is qSample of them', async () => {
      const x0 = kiln.tensor(x0v, shape);
      const reads = () => (kiln.getBackend() === 'gpu' ? kiln.gpuInfo().readbacks : 0);
      const before = reads();
      const { steps: drawn, noise, xt } = schedule.noisyBatch(x0);
      expect(reads() - before, 'device reads').toBe(0);
      expect(drawn.length).toBe(shape[0]);
      for (const t of drawn) expect(t >= 0 && t < T && Number.isInteger(t), `step ${t}`).toBe(true);
      assertClose(await read(xt), await readOf(() => schedule.qSample(x0, drawn, noise)), { atol: 0, rtol: 0 });
      kiln.dispose([x0, noise, xt]);
    });

    it('timestepEmbedding is [sin(t f_k), cos(t f_k)] with f_k = 10000^(-k/half)', async () => {
      const e = await readOf(() => nn.timestepEmbedding([0, 7, 123], 8));
      const expected: number[] = [];
      for (const t of [0, 7, 123]) {
        const f = [0, 1, 2, 3].map((k) => t * Math.pow(10000, -k / 4));
        expected.push(...f.map(Math.sin), ...f.map(Math.cos));
      }
      assertClose(e, expected, { atol: 1e-5, rtol: 1e-5 });
    });

    it('rejects bad schedules, steps and sizes with messages naming them', () => {
      expectThrows(() => new nn.DDPMSchedule([0.1, 1.5]), 'DDPMSchedule', 'beta[1]', '1.5');
      expectThrows(() => nn.DDPMSchedule.linear(1), 'DDPMSchedule.linear', 'steps');
      kiln.tidy(() => {
        const x = kiln.zeros([2, 3]);
        expectThrows(() => schedule.qSample(x, [0], x), 'DDPMSchedule.qSample', '1 steps', '[2, 3]');
        expectThrows(() => schedule.qSample(x, [0, T], x), 'DDPMSchedule.qSample', `step ${T}`, `0..${T - 1}`);
      });
      expectThrows(() => nn.timestepEmbedding([1], 5), 'timestepEmbedding', 'even');
    });
  });

  // Learning: ~5 s on native; the ops it uses are covered on every backend elsewhere.
  it.skipIf(backend !== 'native')('a trained denoiser samples a circle; a flipped noise sign or a wrong schedule does not', () => {
    kiln.setSeed(3);
    const next = prng(4);
    const schedule = nn.DDPMSchedule.linear(T);
    const EMBED = 16;
    const net = new nn.Sequential(new nn.Linear(2 + EMBED, 64, { seed: 1 }), new nn.GELU(), new nn.Linear(64, 64, { seed: 2 }), new nn.GELU(), new nn.Linear(64, 2, { seed: 3 }));
    const predict = (xt: Tensor, s: Int32Array) => net.forward(nn.withTimestep(xt, s, EMBED));
    const optimizer = new kiln.optim.Adam(net.parameters(), { lr: 3e-3 });
    for (let step = 0; step < 1200; step++) {
      kiln.tidy(() => {
        optimizer.zeroGrad();
        const { steps, noise, xt } = schedule.noisyBatch(kiln.tensor(circle(128, next), [128, 2]));
        kiln.losses.mse(predict(xt, steps), noise).backward();
        optimizer.step();
      });
    }
    const real = circle(500, next);
    const distance = (points: ArrayLike<number>) => Math.max(meanNearest(points, real), meanNearest(real, points));
    const sampled = kiln.tidy(() => distance(schedule.sample(predict, [500, 2]).dataSync()));
    const noise = kiln.tidy(() => distance(kiln.randn([500, 2]).dataSync()));
    const flipped = kiln.tidy(() => distance(schedule.sample((x, s) => predict(x, s).neg(), [500, 2]).dataSync()));
    const wrongSchedule = nn.DDPMSchedule.linear(T, { betaStart: 1e-4, betaEnd: 0.02 }); // ᾱ_T ≈ 0.6: starts far too clean
    const misScheduled = kiln.tidy(() => distance(wrongSchedule.sample(predict, [500, 2]).dataSync()));
    expect(noise).toBeGreaterThan(0.5);
    expect(sampled).toBeLessThan(0.25 * noise); // measured 0.13; the broken samplers below land near 1
    expect(flipped).toBeGreaterThan(0.5 * noise);
    expect(misScheduled).toBeGreaterThan(0.5 * noise);
  }, 30_000);
});
