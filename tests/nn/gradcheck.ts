/**
 * Finite-difference gradient checks for modules: the gradient autograd gives for
 * L = Σ forward(x)·r (r fixed and random) against central differences, for the input and for
 * every parameter. Parameters are perturbed in place with kiln.assign, so their identity is kept.
 */
import * as kiln from '../../ts/index.js';
import * as nn from '../../ts/nn/index.js';
import { assertClose, randND, read, readOf, T } from '../helpers.js';
import type { ND } from '../reference.js';

export interface GradCheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
  seed?: number;
  /**
   * Check at most this many elements of each tensor (the first, the last and evenly spaced ones
   * between). Every element costs two forward passes (their losses are read together per tensor):
   * a model of ~1,500 parameters checked in full takes a minute on a software GPU.
   */
  elementsPerTensor?: number;
}

/** Indices 0..n-1, or `limit` of them spread evenly from the first to the last. */
function checkedIndices(n: number, limit = Infinity): number[] {
  if (n <= limit) return Array.from({ length: n }, (_, i) => i);
  return Array.from({ length: limit }, (_, k) => Math.round((k * (n - 1)) / (limit - 1)));
}

/**
 * Throws (with the offending element) if any analytic gradient differs from the numerical one.
 * Reads asynchronously, so that it also runs on WebGPU in a page.
 */
export async function gradCheck(module: nn.Module, input: ND, options: GradCheckOptions = {}): Promise<void> {
  const { eps = 1e-2, atol = 2e-3, rtol = 2e-2, seed = 99, elementsPerTensor } = options;
  const outShape = kiln.noGrad(() => kiln.tidy(() => [...module.forward(T(input)).shape]));
  const r = randND(outShape, seed);
  // L of the current parameters at input x, queued (not read): the evaluations of a tensor are
  // read together (readLosses), since on a GPU each read is a round trip.
  const lossAt = (x: ND): kiln.Tensor => kiln.noGrad(() => kiln.tidy(() => module.forward(T(x)).mul(T(r)).sum()));
  const readLosses = async (losses: kiln.Tensor[]): Promise<number[]> => {
    try {
      return await readOf(() => kiln.stack(losses));
    } finally {
      kiln.dispose(losses);
    }
  };
  // Analytic gradients.
  module.zeroGrad();
  const analytic: Record<string, ArrayLike<number>> = {};
  const grads: Record<string, kiln.Tensor> = kiln.tidy(() => {
    const x = T(input).setRequiresGrad();
    module.forward(x).mul(T(r)).sum().backward();
    return Object.fromEntries([['input', x.grad!], ...Array.from(module.namedParameters(), ([name, p]) => [name, p.grad ?? kiln.zeros([...p.shape])])]);
  });
  for (const [name, g] of Object.entries(grads)) analytic[name] = await read(g);
  kiln.dispose(Object.values(grads));
  module.zeroGrad();

  // Numerical: central differences, one element at a time.
  const inputIndices = checkedIndices(input.data.length, elementsPerTensor);
  const inputLosses: kiln.Tensor[] = [];
  for (const i of inputIndices) {
    for (const sign of [1, -1]) {
      const x = { shape: input.shape, data: input.data.slice() };
      x.data[i] += sign * eps;
      inputLosses.push(lossAt(x));
    }
  }
  const inputL = await readLosses(inputLosses);
  const numericInput = inputIndices.map((_, k) => (inputL[2 * k] - inputL[2 * k + 1]) / (2 * eps));
  assertClose(inputIndices.map((i) => analytic.input[i]), numericInput, { atol, rtol, roundExpected: false }, `d/d input`);

  for (const [name, p] of module.namedParameters()) {
    const base = await read(p);
    const set = (values: number[]): void => kiln.tidy(() => void kiln.assign(p, kiln.tensor(Float32Array.from(values), [...p.shape])));
    const indices = checkedIndices(base.length, elementsPerTensor);
    // Each evaluation's loss is queued after the assign before it, so it sees that perturbation.
    const losses: kiln.Tensor[] = [];
    for (const i of indices) {
      for (const sign of [1, -1]) {
        const vals = base.slice();
        vals[i] = base[i] + sign * eps;
        set(vals);
        losses.push(lossAt(input));
      }
    }
    const L = await readLosses(losses);
    const numeric = indices.map((_, k) => (L[2 * k] - L[2 * k + 1]) / (2 * eps));
    set(base);
    assertClose(indices.map((i) => analytic[name][i]), numeric, { atol, rtol, roundExpected: false }, `d/d ${name}`);
  }
}
