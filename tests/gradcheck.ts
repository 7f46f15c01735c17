/**
 * A finite-difference gradient checker for autograd, and input generators that keep the
 * difference quotient away from kinks and domain edges (as crates/kiln-core/tests/gradcheck.rs).
 *
 * The checked scalar is L = sum(f(inputs) * w) with fixed random weights w, so every output
 * element's gradient path is used with a different weight (a plain sum would hide, e.g., a
 * transposed or permuted gradient). The analytic side is Kiln's backward of L; the numeric side
 * is a central difference (L(x + eps) - L(x - eps)) / 2eps per input element, where L is summed
 * in float64 from the float32 outputs, so only the op's own float32 rounding enters the quotient.
 */
import * as kiln from '../ts/index.js';
import type { Tensor } from '../ts/index.js';
import { prng, read } from './helpers.js';
import { type ND, sizeOf } from './reference.js';

export interface GradCheckOptions {
  /** Finite-difference step (default 1e-2: float32 outputs carry ~1e-7 relative error, so a
   * smaller step would drown the quotient in rounding; a larger one in truncation error). */
  eps?: number;
  /** Pass when |analytic - numeric| <= atol + rtol·|numeric|. Defaults 2e-3 and 2e-3: the step-1e-2 truncation error of the checked ops stays below ~1e-3 on these inputs. */
  atol?: number;
  rtol?: number;
  /** Seed of the output weights w. */
  seed?: number;
  /** Which inputs to check (default all); the others are constants. */
  wrt?: number[];
}

/** Finite-difference evaluations read back together: at most this many, of at most this many output elements (16 MB of float32). */
const EVALUATIONS_PER_READ = 256;
const EVALUATION_FLOATS = 1 << 22;

function shapeOf(x: ND): number[] {
  return [...x.shape];
}

/** Fixed weights in [-1, -0.25] ∪ [0.25, 1]: none close to zero, so no output is ignored. */
function outputWeights(n: number, seed: number): Float32Array {
  const r = prng(seed);
  return Float32Array.from({ length: n }, () => {
    const v = 0.25 + 0.75 * r();
    return r() < 0.5 ? -v : v;
  });
}

/**
 * Checks d(sum(f(inputs) * w))/d(inputs) against central differences. Throws with the first
 * mismatches (input, flat index, analytic, numeric) on failure. Frees every tensor it makes.
 */
export async function gradCheck(name: string, inputs: ND[], f: (xs: Tensor[]) => Tensor, options: GradCheckOptions = {}): Promise<void> {
  const eps = options.eps ?? 1e-2;
  const atol = options.atol ?? 2e-3;
  const rtol = options.rtol ?? 2e-3;
  const wrt = options.wrt ?? inputs.map((_, i) => i);

  // ---- analytic: Kiln's backward of L ----
  const analytic = kiln.tidy(() => {
    const leaves = inputs.map((x, i) => {
      const t = kiln.tensor(Float32Array.from(x.data), shapeOf(x));
      return wrt.includes(i) ? t.setRequiresGrad() : t;
    });
    const out = f(leaves);
    if (!out.requiresGrad) throw new Error(`${name}: the output does not require gradients`);
    const w = kiln.tensor(outputWeights(out.size, options.seed ?? 99), [...out.shape]);
    const loss = kiln.sum(kiln.mul(out, w));
    loss.backward();
    return { outShape: [...out.shape], grads: leaves.map((l, i) => (wrt.includes(i) ? l.grad : null)) };
  });
  const weights = outputWeights(sizeOf(analytic.outShape), options.seed ?? 99);

  // ---- numeric: L in float64 from the float32 outputs ----
  // The evaluations are queued without waiting and their outputs read together, a batch at a
  // time: on a GPU each read is a round trip (in a page, WebGPU's mapAsync), and one per
  // evaluation made these checks the slowest part of the suite there.
  const outputAt = (values: Float32Array[]): Tensor =>
    kiln.noGrad(() => kiln.tidy(() => {
      const out = f(values.map((v, i) => kiln.tensor(v, shapeOf(inputs[i]))));
      return out.reshape([out.size]);
    }));
  /** L at `count` variants of the inputs, `variant(k)` making the k-th when its batch is queued. */
  const lossesAt = async (count: number, variant: (k: number) => Float32Array[]): Promise<number[]> => {
    const losses: number[] = [];
    const perBatch = Math.max(1, Math.min(EVALUATIONS_PER_READ, Math.floor(EVALUATION_FLOATS / weights.length)));
    for (let start = 0; start < count; start += perBatch) {
      const outs = Array.from({ length: Math.min(perBatch, count - start) }, (_, k) => outputAt(variant(start + k)));
      if (outs.some((o) => o.size !== weights.length)) {
        kiln.dispose(outs);
        throw new Error(`${name}: output size changed between evaluations`);
      }
      const stacked = kiln.tidy(() => kiln.stack(outs));
      kiln.dispose(outs);
      const data = await read(stacked);
      stacked.dispose();
      for (let k = 0; k * weights.length < data.length; k++) {
        let s = 0;
        for (let j = 0; j < weights.length; j++) s += data[k * weights.length + j] * weights[j];
        losses.push(s);
      }
    }
    return losses;
  };

  const failures: string[] = [];
  let count = 0;
  try {
    for (const i of wrt) {
      const g = analytic.grads[i];
      if (g === null) throw new Error(`${name}: input ${i} got no gradient`);
      if (g.shape.join() !== inputs[i].shape.join()) {
        throw new Error(`${name}: gradient of input ${i} has shape [${g.shape}], the input [${inputs[i].shape}]`);
      }
      const got = await read(g);
      // Variant 2j: the inputs with x_j + eps; variant 2j + 1: with x_j - eps.
      const base = inputs.map((x) => Float32Array.from(x.data));
      const losses = await lossesAt(2 * got.length, (k) => {
        const values = base.map((v, n) => (n === i ? v.slice() : v));
        const j = k >> 1;
        values[i][j] = Math.fround(values[i][j] + (k % 2 === 0 ? eps : -eps));
        return values;
      });
      for (let j = 0; j < got.length; j++) {
        const original = base[i][j];
        const step = Math.fround(original + eps) - Math.fround(original - eps);
        const numeric = (losses[2 * j] - losses[2 * j + 1]) / step;
        if (!(Math.abs(got[j] - numeric) <= atol + rtol * Math.abs(numeric))) {
          count++;
          if (failures.length < 6) failures.push(`  input ${i} [${inputs[i].shape}] element ${j} (x=${original}): analytic ${got[j]}, numeric ${numeric}`);
        }
      }
    }
  } finally {
    for (const g of analytic.grads) g?.dispose();
  }
  if (count > 0) {
    throw new Error(`${name}: ${count} gradient elements differ from finite differences (eps ${eps}, atol ${atol}, rtol ${rtol}):\n${failures.join('\n')}`);
  }
}

// ---- inputs away from kinks --------------------------------------------------------------------

/** Uniform in [low, high), float32-representable. */
export function uniform(shape: number[], seed: number, low = -1, high = 1): ND {
  const r = prng(seed);
  return { shape: [...shape], data: Array.from({ length: sizeOf(shape) }, () => Math.fround(low + (high - low) * r())) };
}

/** Values with |x| in [0.2, 1.2) and random sign: away from the kink at 0 (abs, relu, elu). */
export function signed(shape: number[], seed: number): ND {
  const r = prng(seed);
  return { shape: [...shape], data: Array.from({ length: sizeOf(shape) }, () => Math.fround((r() < 0.5 ? -1 : 1) * (0.2 + r()))) };
}

/** Values in [0.5, 2): inside the domain of log, sqrt, rsqrt, pow with a real exponent. */
export function positive(shape: number[], seed: number): ND {
  return uniform(shape, seed, 0.5, 2);
}

/**
 * Distinct values 0.1 apart in a scrambled order, shifted by `offset`: no two within a
 * finite-difference step, so max/min/maximum/minimum never switch winners under perturbation.
 */
export function separated(shape: number[], offset = 0): ND {
  const n = sizeOf(shape);
  // 7919 is prime, so i -> 7919·i mod n is a permutation whenever n is not a multiple of it.
  return { shape: [...shape], data: Array.from({ length: n }, (_, i) => Math.fround(((i * 7919) % n) * 0.1 - 1 + offset)) };
}
