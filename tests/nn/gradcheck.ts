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
}

/**
 * Throws (with the offending element) if any analytic gradient differs from the numerical one.
 * Reads asynchronously, so that it also runs on WebGPU in a page.
 */
export async function gradCheck(module: nn.Module, input: ND, options: GradCheckOptions = {}): Promise<void> {
  const { eps = 1e-2, atol = 2e-3, rtol = 2e-2, seed = 99 } = options;
  const outShape = kiln.noGrad(() => kiln.tidy(() => [...module.forward(T(input)).shape]));
  const r = randND(outShape, seed);
  const lossAt = async (x: ND): Promise<number> => (await readOf(() => kiln.noGrad(() => module.forward(T(x)).mul(T(r)).sum())))[0];

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
  const numericInput: number[] = [];
  for (let i = 0; i < input.data.length; i++) {
    const plus = { shape: input.shape, data: input.data.slice() };
    const minus = { shape: input.shape, data: input.data.slice() };
    plus.data[i] += eps;
    minus.data[i] -= eps;
    numericInput.push(((await lossAt(plus)) - (await lossAt(minus))) / (2 * eps));
  }
  assertClose(analytic.input, numericInput, { atol, rtol, roundExpected: false }, `d/d input`);

  for (const [name, p] of module.namedParameters()) {
    const base = await read(p);
    const set = (values: number[]): void => kiln.tidy(() => void kiln.assign(p, kiln.tensor(Float32Array.from(values), [...p.shape])));
    const numeric: number[] = [];
    for (let i = 0; i < base.length; i++) {
      const vals = base.slice();
      vals[i] = base[i] + eps;
      set(vals);
      const up = await lossAt(input);
      vals[i] = base[i] - eps;
      set(vals);
      const down = await lossAt(input);
      numeric.push((up - down) / (2 * eps));
    }
    set(base);
    assertClose(analytic[name], numeric, { atol, rtol, roundExpected: false }, `d/d ${name}`);
  }
}
