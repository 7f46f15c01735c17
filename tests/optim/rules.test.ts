/**
 * Each optimizer's update against PyTorch's documented formulas computed in float64
 * (tests/optim/reference.ts): parameters and state after each of 3 steps on a quadratic, for
 * plain/momentum/Nesterov/dampened SGD, Adam, AdamW, RMSProp and AdaGrad, with L2 weight decay,
 * global-norm and value clipping, and parameter groups.
 */
import { expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import type { Tensor } from '../../ts/index.js';
import { optim } from '../../ts/index.js';
import type { Optimizer, ParamGroup } from '../../ts/optim/index.js';
import { forEachBackend } from '../backends.js';
import { assertClose, expectThrows, read } from '../helpers.js';
import { ReferenceOptimizer, type ReferenceHyper, type RuleName } from './reference.js';
import { kilnStep, makeParams, quadratic, referenceGrads, values } from './problem.js';

const TOL = { atol: 2e-6, rtol: 2e-5, roundExpected: false };

function makeKiln(rule: RuleName, params: Tensor[] | ParamGroup[], h: ReferenceHyper): Optimizer {
  switch (rule) {
    case 'sgd':
      return new optim.SGD(params, h);
    case 'adam':
      return new optim.Adam(params, h);
    case 'adamw':
      return new optim.AdamW(params, h);
    case 'rmsprop':
      return new optim.RMSProp(params, h);
    case 'adagrad':
      return new optim.AdaGrad(params, h);
  }
}

interface Config {
  name: string;
  rule: RuleName;
  hyper: ReferenceHyper;
}

const CONFIGS: Config[] = [
  { name: 'SGD plain', rule: 'sgd', hyper: { lr: 0.1 } },
  { name: 'SGD momentum', rule: 'sgd', hyper: { lr: 0.1, momentum: 0.9 } },
  { name: 'SGD Nesterov', rule: 'sgd', hyper: { lr: 0.1, momentum: 0.9, nesterov: true } },
  { name: 'SGD momentum + dampening', rule: 'sgd', hyper: { lr: 0.1, momentum: 0.8, dampening: 0.5 } },
  { name: 'SGD momentum + L2 weight decay', rule: 'sgd', hyper: { lr: 0.1, momentum: 0.9, weightDecay: 0.1 } },
  { name: 'Adam defaults', rule: 'adam', hyper: { lr: 0.1 } },
  { name: 'Adam betas/eps + L2 weight decay', rule: 'adam', hyper: { lr: 0.05, beta1: 0.8, beta2: 0.99, eps: 1e-3, weightDecay: 0.05 } },
  { name: 'AdamW default decay (0.01)', rule: 'adamw', hyper: { lr: 0.1 } },
  { name: 'AdamW decay 0.2', rule: 'adamw', hyper: { lr: 0.1, weightDecay: 0.2 } },
  { name: 'RMSProp defaults', rule: 'rmsprop', hyper: { lr: 0.01 } },
  // eps 0.1 makes its placement (outside the root, as PyTorch) visible
  { name: 'RMSProp alpha 0.9, eps 0.1, L2 decay', rule: 'rmsprop', hyper: { lr: 0.01, alpha: 0.9, eps: 0.1, weightDecay: 0.1 } },
  { name: 'AdaGrad defaults', rule: 'adagrad', hyper: { lr: 0.1 } },
  { name: 'AdaGrad eps 0.1, L2 decay', rule: 'adagrad', hyper: { lr: 0.1, eps: 0.1, weightDecay: 0.1 } },
  { name: 'SGD momentum, clipNorm binding', rule: 'sgd', hyper: { lr: 0.1, momentum: 0.9, clipNorm: 0.5 } },
  { name: 'SGD, clipNorm not binding', rule: 'sgd', hyper: { lr: 0.1, clipNorm: 1000 } },
  { name: 'Adam, clipNorm binding + L2 decay', rule: 'adam', hyper: { lr: 0.1, clipNorm: 0.7, weightDecay: 0.1 } },
  { name: 'SGD, clipValue', rule: 'sgd', hyper: { lr: 0.1, clipValue: 0.3 } },
  { name: 'RMSProp, clipValue + L2 decay', rule: 'rmsprop', hyper: { lr: 0.01, clipValue: 0.5, weightDecay: 0.1 } },
];

/** Runs Kiln and the reference side by side, comparing parameters and state after each step. */
async function compare(c: Config, steps = 3): Promise<void> {
  const q = quadratic();
  const params = makeParams(q);
  const opt = makeKiln(c.rule, params, c.hyper);
  const ref = new ReferenceOptimizer(c.rule, q.initial, c.hyper);
  for (let s = 1; s <= steps; s++) {
    kilnStep(q, params, opt);
    ref.step(referenceGrads(q, ref.params));
    const got = await values(params);
    got.forEach((v, i) => assertClose(v, ref.params[i], TOL, `${c.name}: parameter ${i} after step ${s}`));
    const state = opt.state();
    expect(state.step).toBe(s);
    for (let i = 0; i < params.length; i++) {
      const want = ref.slots(i);
      expect(state.slots[i].length, `${c.name}: state tensors of parameter ${i}`).toBe(want.length);
      for (let k = 0; k < want.length; k++) assertClose(await read(state.slots[i][k]), want[k], TOL, `${c.name}: state ${k} of parameter ${i} after step ${s}`);
    }
  }
  opt.dispose();
  kiln.dispose(params);
}

forEachBackend(() => {
  it('SGD by hand: p = 1 under L = p²/2, lr 0.1 (plain: 0.9, 0.81, 0.729; momentum 0.9: 0.9, 0.72, 0.486)', async () => {
    for (const [momentum, want] of [
      [0, [0.9, 0.81, 0.729]],
      [0.9, [0.9, 0.72, 0.486]],
    ] as const) {
      const p = kiln.tensor([1]).setRequiresGrad();
      const opt = new optim.SGD([p], { lr: 0.1, momentum });
      const got: number[] = [];
      for (let s = 0; s < 3; s++) {
        kiln.tidy(() => {
          opt.zeroGrad();
          p.square().mul(0.5).sum().backward();
          opt.step();
        });
        got.push((await read(p))[0]);
      }
      assertClose(got, [...want], { atol: 1e-6, rtol: 1e-6 }, `momentum ${momentum}`);
      opt.dispose();
      p.dispose();
    }
  });

  it('Adam by hand: the first step moves every element by lr (m̂/√v̂ = ±1)', async () => {
    const p = kiln.tensor([1, -2, 0.5]).setRequiresGrad();
    const opt = new optim.Adam([p], { lr: 0.01 });
    kiln.tidy(() => {
      p.square().mul(0.5).sum().backward();
      opt.step();
    });
    assertClose(await read(p), [0.99, -1.99, 0.49], { atol: 1e-6, rtol: 1e-6 });
    opt.dispose();
    p.dispose();
  });

  for (const c of CONFIGS) {
    it(`${c.name}: 3 steps match the float64 formula (parameters and state)`, async () => {
      await compare(c);
    });
  }

  it('parameter groups: each group uses its own lr and weight decay; schedules keep the ratio', async () => {
    const q = quadratic(2);
    const params = makeParams(q);
    const hyper: ReferenceHyper = { lr: 0.01, momentum: 0.9 };
    const opt = new optim.SGD([{ params: [params[0]], lr: 0.1, weightDecay: 0.2 }, { params: [params[1]] }], hyper);
    const ref = new ReferenceOptimizer('sgd', q.initial, hyper, [10, 1], [0.2, 0]);
    for (let s = 1; s <= 4; s++) {
      if (s === 3) {
        // a schedule sets the base lr; group 0 stays at 10x
        opt.lr = 0.005;
        ref.lr = 0.005;
      }
      kilnStep(q, params, opt);
      ref.step(referenceGrads(q, ref.params));
      const got = await values(params);
      got.forEach((v, i) => assertClose(v, ref.params[i], TOL, `group parameter ${i} after step ${s}`));
    }
    expect(opt.parameters).toEqual(params);
    opt.dispose();
    kiln.dispose(params);
  });

  it('parameter groups with Adam: different lr per group', async () => {
    const q = quadratic(3);
    const params = makeParams(q);
    const opt = new optim.Adam([{ params: [params[1]], lr: 0.2 }, { params: [params[0]], lr: 0.02 }], { lr: 0.1 });
    // kiln's parameter order is group order: [params[1], params[0]]
    const ref = new ReferenceOptimizer('adam', q.initial, { lr: 0.1 }, [0.2, 2]);
    for (let s = 1; s <= 3; s++) {
      kilnStep(q, params, opt);
      ref.step(referenceGrads(q, ref.params));
    }
    const got = await values(params);
    got.forEach((v, i) => assertClose(v, ref.params[i], TOL, `parameter ${i}`));
    opt.dispose();
    kiln.dispose(params);
  });

  it('clipNorm uses one global norm across all parameters (not a norm per parameter)', async () => {
    const a = kiln.tensor([3, 0]).setRequiresGrad();
    const b = kiln.tensor([0, 4]).setRequiresGrad();
    const opt = new optim.SGD([a, b], { lr: 1, clipNorm: 1 });
    // L = a·[1,0]·3 + b·[0,1]·4 with gradients [3,0] and [0,4]: global norm 5, so both scale by 1/5
    kiln.tidy(() => {
      kiln.add(a.mul(kiln.tensor([3, 0])).sum(), b.mul(kiln.tensor([0, 4])).sum()).backward();
      opt.step();
    });
    assertClose(await read(a), [3 - 0.6, 0], { atol: 1e-5 });
    assertClose(await read(b), [0, 4 - 0.8], { atol: 1e-5 });
    opt.dispose();
    kiln.dispose([a, b]);
  });

  it('clipValue clamps each element; weight decay is added after clipping (as clip then torch.optim)', async () => {
    const p = kiln.tensor([2, -3, 0.1]).setRequiresGrad();
    const opt = new optim.SGD([p], { lr: 1, clipValue: 0.5, weightDecay: 0.1 });
    // gradient = p: [2, -3, 0.1] -> clipped [0.5, -0.5, 0.1], plus 0.1·p
    kiln.tidy(() => {
      p.square().mul(0.5).sum().backward();
      opt.step();
    });
    assertClose(await read(p), [2 - 0.5 - 0.2, -3 + 0.5 + 0.3, 0.1 - 0.1 - 0.01], { atol: 1e-6 });
    opt.dispose();
    p.dispose();
  });

  it('a gradient norm of NaN or Inf with clipNorm: an Error in host memory; on a GPU, which does not wait for the norm, NaN as in torch', async () => {
    const p = kiln.tensor([1, 2]).setRequiresGrad();
    const opt = new optim.SGD([p], { lr: 0.1, clipNorm: 1 });
    kiln.tidy(() => p.mul(kiln.tensor([NaN, 1])).sum().backward());
    if (p.device === 'cpu') {
      expectThrows(() => opt.step(), 'gradient norm is NaN');
    } else {
      // torch.nn.utils.clip_grad_norm_ (error_if_nonfinite=False) scales by a NaN coefficient too;
      // fit's gradient guard stops or skips such a step before the optimizer sees it.
      opt.step();
      expect((await read(p)).every(Number.isNaN)).toBe(true);
    }
    opt.dispose();
    p.dispose();
  });

  it('parameters without a gradient are skipped and keep their values', async () => {
    const q = quadratic(4);
    const params = makeParams(q);
    const opt = new optim.Adam(params, { lr: 0.1 });
    kilnStep(q, params, opt, [0]);
    expect(await read(params[1])).toEqual(q.initial[1].map(Math.fround));
    expect(await read(params[0])).not.toEqual(q.initial[0].map(Math.fround));
    opt.dispose();
    kiln.dispose(params);
  });

  for (const c of [CONFIGS[3], CONFIGS[5]]) {
    it(`${c.name}: a parameter whose first gradient arrives at step 2 starts its state then (per-parameter state, as PyTorch)`, async () => {
      const q = quadratic(5);
      const params = makeParams(q);
      const opt = makeKiln(c.rule, params, c.hyper);
      const ref = new ReferenceOptimizer(c.rule, q.initial, c.hyper);
      for (let s = 1; s <= 3; s++) {
        const use = s === 1 ? [0] : [0, 1];
        kilnStep(q, params, opt, use);
        const g = referenceGrads(q, ref.params);
        ref.step(g.map((v, i) => (use.includes(i) ? v : null)));
      }
      const got = await values(params);
      got.forEach((v, i) => assertClose(v, ref.params[i], TOL, `${c.name}: parameter ${i} (first gradient at step ${i === 0 ? 1 : 2})`));
      opt.dispose();
      kiln.dispose(params);
    });
  }

  it('constructor validation: lr > 0, float32 parameters, nesterov needs momentum', () => {
    const p = kiln.tensor([1]);
    expectThrows(() => new optim.SGD([p], { lr: 0 }), 'lr must be > 0');
    expectThrows(() => new optim.Adam([p], { lr: -1 }), 'lr must be > 0');
    const i = kiln.tensor(new Int32Array([1]));
    expectThrows(() => new optim.SGD([i], { lr: 0.1 }), 'float32', 'int32');
    expectThrows(() => new optim.SGD([p], { lr: 0.1, nesterov: true }), 'nesterov');
    kiln.dispose([p, i]);
  });

  it('1,000 steps of Adam with clipping keep memory() flat', () => {
    const q = quadratic(6);
    const params = makeParams(q);
    const opt = new optim.Adam(params, { lr: 0.01, clipNorm: 1, weightDecay: 0.01 });
    kilnStep(q, params, opt);
    opt.zeroGrad();
    const start = kiln.memory();
    for (let s = 0; s < 1000; s++) kilnStep(q, params, opt);
    opt.zeroGrad();
    expect(kiln.memory()).toEqual(start);
    opt.dispose();
    kiln.dispose(params);
  });
});
