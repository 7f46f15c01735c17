/**
 * GAN objectives: both losses against their float64 formulas, and a learning test on 1-D data: a
 * linear generator trained against an MLP discriminator with the non-saturating loss matches the
 * target's mean and standard deviation, while the same loop with the generator loss's target
 * flipped (G minimizing BCE against "fake", a sign error) drifts away.
 */
import { describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import * as nn from '../../ts/nn/index.js';
import type { Tensor } from '../../ts/index.js';
import { forEachBackend } from '../backends.js';
import { assertClose, readOf } from '../helpers.js';

const softplus = (v: number) => Math.max(v, 0) + Math.log1p(Math.exp(-Math.abs(v)));
const TARGET_MEAN = 3;
const TARGET_STD = 1.5;

/** Trains a 1-D GAN and returns the mean and std of 4,000 generated values. */
function trainGan(generatorObjective: (fakeLogits: Tensor) => Tensor): { mean: number; std: number } {
  kiln.setSeed(21);
  const generator = new nn.Linear(4, 1, { seed: 1 });
  const discriminator = new nn.Sequential(new nn.Linear(1, 32, { seed: 2 }), new nn.LeakyReLU(0.2), new nn.Linear(32, 32, { seed: 3 }), new nn.LeakyReLU(0.2), new nn.Linear(32, 1, { seed: 4 }));
  const adam = { lr: 5e-3, beta1: 0.5, beta2: 0.999 };
  const gOptimizer = new kiln.optim.Adam(generator.parameters(), adam);
  const dOptimizer = new kiln.optim.Adam(discriminator.parameters(), adam);
  for (let step = 0; step < 1500; step++) {
    kiln.tidy(() => {
      dOptimizer.zeroGrad();
      const real = kiln.randn([128, 1], { mean: TARGET_MEAN, std: TARGET_STD });
      const fake = generator.forward(kiln.randn([128, 4])).detach();
      nn.discriminatorLoss(discriminator.forward(real), discriminator.forward(fake)).backward();
      dOptimizer.step();
      gOptimizer.zeroGrad();
      generatorObjective(discriminator.forward(generator.forward(kiln.randn([128, 4])))).backward();
      gOptimizer.step();
    });
  }
  return kiln.noGrad(() => kiln.tidy(() => {
    const x = generator.forward(kiln.randn([4000, 4]));
    return { mean: x.mean().dataSync()[0], std: Math.sqrt(x.variance().dataSync()[0]) };
  }));
}

forEachBackend((backend) => {
  describe('GAN losses', () => {
    it('discriminatorLoss = mean softplus(-real) + mean softplus(fake); generatorLoss = mean softplus(-fake)', async () => {
      const real = [2.5, -1, 0.3, 40];
      const fake = [-3, 0.7, -50];
      const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
      const d = await readOf(() => nn.discriminatorLoss(kiln.tensor(real, [4, 1]), kiln.tensor(fake, [3, 1])));
      assertClose(d, [mean(real.map((v) => softplus(-v))) + mean(fake.map(softplus))], { atol: 1e-5, rtol: 1e-5 });
      assertClose(await readOf(() => nn.generatorLoss(kiln.tensor(fake, [3, 1]))), [mean(fake.map((v) => softplus(-v)))], { atol: 1e-5, rtol: 1e-5 });
      // Non-saturating: where D confidently rejects a fake (logit -50) the gradient stays ~ -1/batch.
      const grad = await readOf(() => kiln.grad((l: Tensor) => nn.generatorLoss(l))(kiln.tensor(fake, [3, 1])));
      expect(grad[2]).toBeCloseTo(-1 / 3, 5);
    });
  });

  // Learning: ~4 s on native; the ops it uses are covered on every backend elsewhere.
  it.skipIf(backend !== 'native')('a 1-D GAN matches the target mean and std; a sign-flipped generator loss does not', () => {
    const good = trainGan((logits) => nn.generatorLoss(logits));
    expect(Math.abs(good.mean - TARGET_MEAN)).toBeLessThan(0.3);
    expect(Math.abs(good.std - TARGET_STD)).toBeLessThan(0.4);
    const broken = trainGan((logits) => kiln.losses.binaryCrossEntropy(logits, kiln.zerosLike(logits)));
    expect(Math.abs(broken.mean - TARGET_MEAN) > 1 || Math.abs(broken.std - TARGET_STD) > 1).toBe(true);
  }, 30_000);
});
