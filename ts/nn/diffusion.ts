/**
 * Denoising diffusion (DDPM, Ho et al. 2020): the noise schedule, the forward noising
 * q(x_t | x_0), the posterior q(x_{t-1} | x_t, x_0) and ancestral sampling with a network that
 * predicts the added noise. Steps are 0-based: t = 0 is the first (least noisy) step, t = T-1
 * the last, and ᾱ_{-1} = 1.
 *
 *   const ddpm = DDPMSchedule.linear(200);
 *   const { steps, noise, xt } = ddpm.noisyBatch(x0);             // training input
 *   const loss = mse(model(xt, steps), noise);
 *   const samples = ddpm.sample((x, t) => model(x, t), [64, 2]);  // generation
 *
 * The schedule is kept in float64 on the host (products of hundreds of (1 - β) lose digits in
 * float32); only the per-example coefficients are sent to the backend.
 */

import type { Tensor } from '../tensor.js';
import { tidy, keep } from '../engine.js';
import { tensor, randn } from '../ops/creation.js';
import { randuOnHost } from '../ops/host-random.js';
import { concat } from '../ops/shape.js';
import { noGrad } from '../autograd.js';
import { layerArgs } from './layer-args.js';

/** Options of `DDPMSchedule.linear`: the first and last β. */
export interface LinearScheduleOptions {
  /** β of the first step (default 1e-4 · 1000 / steps, Ho et al.'s 1e-4 for 1000 steps). */
  betaStart?: number;
  /** β of the last step (default 0.02 · 1000 / steps), so ᾱ_T ≈ e^-10 whatever the length. */
  betaEnd?: number;
}

/** The noise predictor ancestral sampling calls: x_t [batch, ...], steps (one per example) -> predicted noise, x_t's shape. */
export type NoisePredictor = (xt: Tensor, steps: Int32Array) => Tensor;

/** Options of `DDPMSchedule.sample`. */
export interface SampleOptions {
  /** Clamp the predicted x_0 to [low, high] before the posterior step (images in [-1, 1]). */
  clip?: [number, number];
  /** Called after each step with t (counting down) and x_{t-1}; e.g. for progress. */
  onStep?: (t: number, x: Tensor) => void;
}

/** A DDPM noise schedule (β, α, ᾱ per step, in float64) with the forward noising, the posterior and ancestral sampling. */
export class DDPMSchedule {
  readonly steps: number;
  readonly betas: Float64Array;
  readonly alphas: Float64Array;
  /** ᾱ_t = Π_{s<=t} α_s. */
  readonly alphaBars: Float64Array;

  /** A schedule from explicit β_0..β_{T-1}, each in (0, 1). */
  constructor(betas: ArrayLike<number>) {
    const args = layerArgs('DDPMSchedule');
    args.numbers('betas', betas, 'numbers in (0, 1)');
    if (betas.length < 1) throw new Error('DDPMSchedule: needs at least one step');
    this.steps = betas.length;
    this.betas = Float64Array.from(betas);
    this.alphas = this.betas.map((b, i) => {
      if (!(b > 0 && b < 1)) throw new Error(`DDPMSchedule: beta[${i}] must be in (0, 1), got ${b}`);
      return 1 - b;
    });
    this.alphaBars = new Float64Array(this.steps);
    let product = 1;
    this.alphas.forEach((a, i) => { product *= a; this.alphaBars[i] = product; });
  }

  /** Ho et al.'s linear schedule, β rising linearly from betaStart to betaEnd over `steps`. */
  static linear(steps: number, options: LinearScheduleOptions = {}): DDPMSchedule {
    if (!Number.isInteger(steps) || steps < 2) throw new Error(`DDPMSchedule.linear: steps must be an integer >= 2, got ${steps}`);
    const start = options.betaStart ?? 1e-4 * 1000 / steps;
    const end = options.betaEnd ?? 0.02 * 1000 / steps;
    return new DDPMSchedule(Array.from({ length: steps }, (_, i) => start + (end - start) * i / (steps - 1)));
  }

  /** ᾱ_{t-1}, with ᾱ_{-1} = 1. */
  alphaBarPrev(t: number): number {
    return t === 0 ? 1 : this.alphaBars[t - 1];
  }

  /** Variance of q(x_{t-1} | x_t, x_0): β̃_t = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) · β_t. */
  posteriorVariance(t: number): number {
    return (1 - this.alphaBarPrev(t)) / (1 - this.alphaBars[t]) * this.betas[t];
  }

  /**
   * Forward noising, a draw of q(x_t | x_0) = N(√ᾱ_t x_0, (1 - ᾱ_t) I) given the noise:
   * x_0 [batch, ...], t [batch] step per example, noise x_0's shape -> x_t, x_0's shape.
   */
  qSample(x0: Tensor, t: ArrayLike<number>, noise: Tensor): Tensor {
    this.checkSteps('qSample', x0, t);
    return tidy(() => x0.mul(this.perExample(x0, t, (s) => Math.sqrt(this.alphaBars[s])))
      .add(noise.mul(this.perExample(x0, t, (s) => Math.sqrt(1 - this.alphaBars[s])))));
  }

  /**
   * Mean of the posterior q(x_{t-1} | x_t, x_0):
   * √ᾱ_{t-1} β_t / (1 - ᾱ_t) · x_0 + √α_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t) · x_t.
   * x_0, x_t [batch, ...], t [batch] -> x_t's shape.
   */
  posteriorMean(x0: Tensor, xt: Tensor, t: ArrayLike<number>): Tensor {
    this.checkSteps('posteriorMean', x0, t);
    return tidy(() => x0.mul(this.perExample(x0, t, (s) => Math.sqrt(this.alphaBarPrev(s)) * this.betas[s] / (1 - this.alphaBars[s])))
      .add(xt.mul(this.perExample(xt, t, (s) => Math.sqrt(this.alphas[s]) * (1 - this.alphaBarPrev(s)) / (1 - this.alphaBars[s])))));
  }

  /** x_0 implied by x_t and a noise estimate: (x_t - √(1 - ᾱ_t) ε) / √ᾱ_t. Shapes as qSample. */
  predictX0(xt: Tensor, t: ArrayLike<number>, noise: Tensor): Tensor {
    this.checkSteps('predictX0', xt, t);
    return tidy(() => xt.sub(noise.mul(this.perExample(xt, t, (s) => Math.sqrt(1 - this.alphaBars[s]))))
      .mul(this.perExample(xt, t, (s) => 1 / Math.sqrt(this.alphaBars[s]))));
  }

  /**
   * A training batch: a uniform step per example, Gaussian noise and the noised input.
   * x_0 [batch, ...] -> { steps [batch] on the host, noise and xt, x_0's shape }.
   */
  noisyBatch(x0: Tensor): { steps: Int32Array; noise: Tensor; xt: Tensor } {
    const batch = x0.shape[0];
    // Drawn on the host: the steps index host-side tables (perExample), so a GPU would only send them back.
    const steps = Int32Array.from(randuOnHost(batch), (u) => Math.min(this.steps - 1, Math.floor(u * this.steps)));
    const noise = randn([...x0.shape]);
    return { steps, noise, xt: this.qSample(x0, steps, noise) };
  }

  /**
   * Ancestral sampling: x_T ~ N(0, I), then x_{t-1} ~ N(μ̃(x̂_0, x_t), β̃_t) for t = T-1..0 with
   * x̂_0 from the predicted noise; no noise is added at the last step. shape [batch, ...] -> x_0.
   */
  sample(predictNoise: NoisePredictor, shape: number[], options: SampleOptions = {}): Tensor {
    return noGrad(() => {
      let x = keep(randn(shape));
      const batch = shape[0];
      for (let t = this.steps - 1; t >= 0; t--) {
        const next = keep(tidy(() => {
          const ts = new Int32Array(batch).fill(t);
          let x0 = this.predictX0(x, ts, predictNoise(x, ts));
          if (options.clip) x0 = x0.maximum(options.clip[0]).minimum(options.clip[1]);
          const mean = this.posteriorMean(x0, x, ts);
          return t === 0 ? mean : mean.add(randn(shape).mul(Math.sqrt(this.posteriorVariance(t))));
        }));
        x.dispose();
        x = next;
        options.onStep?.(t, x);
      }
      return x;
    });
  }

  /** A [batch, 1, ...] float32 tensor of coef(t_i), broadcasting against x. */
  private perExample(x: Tensor, t: ArrayLike<number>, coef: (step: number) => number): Tensor {
    return tensor(Float32Array.from(t, coef), [x.shape[0], ...x.shape.slice(1).map(() => 1)]);
  }

  private checkSteps(op: string, x: Tensor, t: ArrayLike<number>): void {
    if (x.shape.length < 1 || t.length !== x.shape[0]) {
      throw new Error(`DDPMSchedule.${op}: expected one step per example, got ${t.length} steps for ${x.dtype} [${x.shape.join(', ')}]`);
    }
    for (let i = 0; i < t.length; i++) {
      if (!Number.isInteger(t[i]) || t[i] < 0 || t[i] >= this.steps) {
        throw new Error(`DDPMSchedule.${op}: step ${t[i]} at index ${i} is outside 0..${this.steps - 1}`);
      }
    }
  }
}

/**
 * Sinusoidal timestep embedding (Transformer positional encoding applied to t): half the
 * columns sin(t · f_k), half cos(t · f_k), f_k = maxPeriod^(-k / (dim/2)).
 * t [batch] (host numbers) -> [batch, dim] float32.
 */
export function timestepEmbedding(t: ArrayLike<number>, dim: number, maxPeriod = 10000): Tensor {
  if (!Number.isInteger(dim) || dim < 2 || dim % 2 !== 0) throw new Error(`timestepEmbedding: dim must be an even integer >= 2, got ${dim}`);
  const half = dim / 2;
  const out = new Float32Array(t.length * dim);
  for (let i = 0; i < t.length; i++) {
    for (let k = 0; k < half; k++) {
      const angle = t[i] * Math.pow(maxPeriod, -k / half);
      out[i * dim + k] = Math.sin(angle);
      out[i * dim + half + k] = Math.cos(angle);
    }
  }
  return tensor(out, [t.length, dim]);
}

/** Concatenates a timestep embedding to flat inputs: x [batch, d], t [batch] -> [batch, d + dim]. */
export function withTimestep(x: Tensor, t: ArrayLike<number>, dim: number): Tensor {
  return tidy(() => concat([x, timestepEmbedding(t, dim)], 1));
}
