/**
 * Kiln's optimizers against tfjs's (tf.train.*) on the same quadratic with the same
 * hyper-parameters, several steps; each library computes the gradient c·(p - t) with its own ops
 * (Kiln by autograd, tfjs directly, as tfjs-core here has no gradient registry).
 *
 * Known differences, matched or bounded here:
 * - tfjs's defaults differ (adam/rmsprop epsilon 1e-7, rmsprop decay 0.9, adagrad initial
 *   accumulator 0.1): every hyper-parameter is passed explicitly, and adagrad's initial
 *   accumulator is set to 0 (PyTorch's and Kiln's).
 * - tfjs rmsprop and adagrad put epsilon inside the root (g / √(v + ε)); Kiln follows PyTorch
 *   (g / (√v + ε)). With ε ≤ 1e-7 and v of order 1e-2 or more the two agree to ~1e-6 relative,
 *   inside the tolerance; the placement itself is checked against the hand formula with a
 *   large ε in rules.test.ts.
 * - tfjs has no dampening, weight decay or decoupled decay, so those are checked only against
 *   the float64 formula.
 */
import { it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { optim } from '../../ts/index.js';
import type { Optimizer } from '../../ts/optim/index.js';
import type { Tensor } from '../../ts/index.js';
import { forEachBackend } from '../backends.js';
import { assertClose } from '../helpers.js';
import { tf } from '../tf.js';
import { kilnStep, makeParams, quadratic, values } from './problem.js';

const STEPS = 6;
const TOL = { atol: 5e-6, rtol: 5e-5, roundExpected: false };

interface TfCase {
  name: string;
  kiln: (params: Tensor[]) => Optimizer;
  tf: () => tf.Optimizer;
}

const CASES: TfCase[] = [
  { name: 'sgd', kiln: (p) => new optim.SGD(p, { lr: 0.1 }), tf: () => tf.train.sgd(0.1) },
  { name: 'momentum', kiln: (p) => new optim.SGD(p, { lr: 0.05, momentum: 0.9 }), tf: () => tf.train.momentum(0.05, 0.9) },
  { name: 'momentum (Nesterov)', kiln: (p) => new optim.SGD(p, { lr: 0.05, momentum: 0.9, nesterov: true }), tf: () => tf.train.momentum(0.05, 0.9, true) },
  { name: 'adam', kiln: (p) => new optim.Adam(p, { lr: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-7 }), tf: () => tf.train.adam(0.05, 0.9, 0.999, 1e-7) },
  { name: 'adam (other betas)', kiln: (p) => new optim.Adam(p, { lr: 0.02, beta1: 0.5, beta2: 0.9, eps: 1e-7 }), tf: () => tf.train.adam(0.02, 0.5, 0.9, 1e-7) },
  { name: 'rmsprop', kiln: (p) => new optim.RMSProp(p, { lr: 0.01, alpha: 0.9, eps: 1e-8 }), tf: () => tf.train.rmsprop(0.01, 0.9, 0, 1e-8) },
  // tfjs's ε is the backend's 1e-7, inside the root; Kiln's default 1e-10 outside
  { name: 'adagrad', kiln: (p) => new optim.AdaGrad(p, { lr: 0.1 }), tf: () => tf.train.adagrad(0.1, 0) },
];

forEachBackend(() => {
  for (const c of CASES) {
    it(`${c.name}: ${STEPS} steps match tf.train.${c.name.split(' ')[0]}`, async () => {
      const q = quadratic(7);
      const params = makeParams(q);
      const opt = c.kiln(params);
      const vars = q.initial.map((v, i) => tf.variable(tf.tensor(Float32Array.from(v), q.shapes[i]), true, `${c.name}/p${i}`));
      const targets = q.targets.map((v, i) => tf.tensor(Float32Array.from(v), q.shapes[i]));
      const curvature = q.curvature.map((v, i) => tf.tensor(Float32Array.from(v), q.shapes[i]));
      const tfOpt = c.tf();
      for (let s = 1; s <= STEPS; s++) {
        kilnStep(q, params, opt);
        // tfjs-core without the gradient registry: the closed-form gradient c·(p - t), in tfjs ops
        const grads = tf.tidy(() => Object.fromEntries(vars.map((v, i) => [v.name, tf.mul(curvature[i], tf.sub(v, targets[i]))])));
        tfOpt.applyGradients(grads);
        tf.dispose(Object.values(grads));
        const got = await values(params);
        got.forEach((v, i) => assertClose(v, Array.from(vars[i].dataSync()), TOL, `${c.name}: parameter ${i} after step ${s}`));
      }
      tfOpt.dispose();
      tf.dispose([...vars, ...targets, ...curvature]);
      opt.dispose();
      kiln.dispose(params);
    });
  }
});
