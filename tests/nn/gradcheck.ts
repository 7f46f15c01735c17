/**
 * Finite-difference gradient checks for modules: the gradient autograd gives for
 * L = Σ forward(x)·r (r fixed and random) against central differences, for the input and for
 * every parameter. Parameters are perturbed in place with kiln.assign, so their identity is kept.
 */
import * as kiln from '../../ts/index.js';
import * as nn from '../../ts/nn/index.js';
import { assertClose, randND, T } from '../helpers.js';
import type { ND } from '../reference.js';

export interface GradCheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
  seed?: number;
}

/** Throws (with the offending element) if any analytic gradient differs from the numerical one. */
export function gradCheck(module: nn.Module, input: ND, options: GradCheckOptions = {}): void {
  const { eps = 1e-2, atol = 2e-3, rtol = 2e-2, seed = 99 } = options;
  const outShape = kiln.noGrad(() => kiln.tidy(() => [...module.forward(T(input)).shape]));
  const r = randND(outShape, seed);
  const lossAt = (x: ND): number =>
    kiln.noGrad(() => kiln.tidy(() => module.forward(T(x)).mul(T(r)).sum().dataSync()[0]));

  // Analytic gradients.
  module.zeroGrad();
  const analytic: Record<string, ArrayLike<number>> = {};
  kiln.tidy(() => {
    const x = T(input).setRequiresGrad();
    module.forward(x).mul(T(r)).sum().backward();
    analytic.input = x.grad!.dataSync();
    for (const [name, p] of module.namedParameters()) analytic[name] = p.grad?.dataSync() ?? new Float32Array(p.size);
  });
  module.zeroGrad();

  // Numerical: central differences, one element at a time.
  const numericInput = input.data.map((_, i) => {
    const plus = { shape: input.shape, data: input.data.slice() };
    const minus = { shape: input.shape, data: input.data.slice() };
    plus.data[i] += eps;
    minus.data[i] -= eps;
    return (lossAt(plus) - lossAt(minus)) / (2 * eps);
  });
  assertClose(analytic.input, numericInput, { atol, rtol, roundExpected: false }, `d/d input`);

  for (const [name, p] of module.namedParameters()) {
    const base = Array.from(p.dataSync());
    const set = (values: number[]): void => kiln.tidy(() => kiln.assign(p, kiln.tensor(Float32Array.from(values), [...p.shape])));
    const numeric = base.map((v, i) => {
      const vals = base.slice();
      vals[i] = v + eps;
      set(vals);
      const up = lossAt(input);
      vals[i] = v - eps;
      set(vals);
      const down = lossAt(input);
      return (up - down) / (2 * eps);
    });
    set(base);
    assertClose(analytic[name], numeric, { atol, rtol, roundExpected: false }, `d/d ${name}`);
  }
}
