/**
 * The optimizer tests' problem: two parameters ([2, 3] and [3]) under the separable quadratic
 * L = ½ Σ c·(p - t)², so dL/dp = c·(p - t) is known in closed form for the float64 reference,
 * while Kiln computes it with autograd.
 */
import * as kiln from '../../ts/index.js';
import type { Tensor } from '../../ts/index.js';
import type { Optimizer } from '../../ts/optim/index.js';
import { prng } from '../helpers.js';

export interface Quadratic {
  shapes: number[][];
  initial: number[][];
  targets: number[][];
  curvature: number[][];
}

export function quadratic(seed = 1): Quadratic {
  const r = prng(seed);
  const shapes = [[2, 3], [3]];
  const vec = (n: number, lo: number, hi: number) => Array.from({ length: n }, () => Math.fround(lo + (hi - lo) * r()));
  const sizes = shapes.map((s) => s.reduce((a, b) => a * b, 1));
  return {
    shapes,
    initial: sizes.map((n) => vec(n, -2, 2)),
    targets: sizes.map((n) => vec(n, -1, 1)),
    // curvatures in [0.2, 3]: gradients of different sizes per element
    curvature: sizes.map((n) => vec(n, 0.2, 3)),
  };
}

/** Fresh leaf tensors holding the initial values. */
export function makeParams(q: Quadratic, values = q.initial): Tensor[] {
  return values.map((v, i) => kiln.tensor(Float32Array.from(v), q.shapes[i]).setRequiresGrad());
}

/** Gradients in float64: c·(p - t). */
export function referenceGrads(q: Quadratic, params: number[][]): number[][] {
  return params.map((p, i) => p.map((v, j) => q.curvature[i][j] * (v - q.targets[i][j])));
}

/** Kiln's loss for the given parameters (only those listed in `use` contribute). */
export function kilnLoss(q: Quadratic, params: Tensor[], use = params.map((_, i) => i)): Tensor {
  return kiln.tidy(() => {
    const terms = use.map((i) => kiln.sum(kiln.mul(kiln.square(kiln.sub(params[i], kiln.tensor(Float32Array.from(q.targets[i]), q.shapes[i]))), kiln.tensor(Float32Array.from(q.curvature[i]), q.shapes[i]))));
    return kiln.mul(terms.reduce((a, b) => kiln.add(a, b)), 0.5);
  });
}

/** One training step: zeroGrad, forward, backward, optimizer step. */
export function kilnStep(q: Quadratic, params: Tensor[], opt: Optimizer, use?: number[]): void {
  kiln.tidy(() => {
    opt.zeroGrad();
    kilnLoss(q, params, use).backward();
    opt.step();
  });
}

export async function values(params: Tensor[]): Promise<number[][]> {
  return Promise.all(params.map(async (p) => Array.from(await p.data())));
}
