/**
 * The VAE pieces: the reparameterization against its formula and its sampling statistics, the
 * negative ELBO against a float64 computation, gradient checks of the whole ELBO path (encoder,
 * sample, decoder, KL), and a learning test on real digits whose held-out ELBO is computed
 * here, independently of nn.VAE: a broken reparameterization, KL or gradient path misses it.
 */
import { describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import * as nn from '../../ts/nn/index.js';
import type { Tensor } from '../../ts/index.js';
import { forEachBackend, heavyIt } from '../backends.js';
import { assertClose, expectThrows, randND, T } from '../helpers.js';
import { gradCheck as opGradCheck, uniform } from '../gradcheck.js';
import { gradCheck } from './gradcheck.js';

const softplus = (v: number) => Math.max(v, 0) + Math.log1p(Math.exp(-Math.abs(v)));

/** -ELBO per example in float64 from logits, targets, mu and logVar read back. */
function negativeElboRef(logits: ArrayLike<number>, x: ArrayLike<number>, mu: ArrayLike<number>, logVar: ArrayLike<number>, batch: number) {
  let rec = 0;
  for (let i = 0; i < x.length; i++) rec += softplus(logits[i]) - logits[i] * x[i];
  let kl = 0;
  for (let i = 0; i < mu.length; i++) kl += -0.5 * (1 + logVar[i] - mu[i] ** 2 - Math.exp(logVar[i]));
  return { reconstruction: rec / batch, kl: kl / batch };
}

function tinyVae(pixels: number, hidden: number, latent: number, seed: number): nn.VAE {
  const encoder = new nn.Sequential(new nn.Linear(pixels, hidden, { seed }), new nn.Tanh(), new nn.Linear(hidden, 2 * latent, { seed: seed + 1 }));
  const decoder = new nn.Sequential(new nn.Linear(latent, hidden, { seed: seed + 2 }), new nn.Tanh(), new nn.Linear(hidden, pixels, { seed: seed + 3 }));
  return new nn.VAE(encoder, decoder, latent);
}

/** The VAE's -ELBO as one module output, with fixed noise, for the module gradient checker. */
class ElboOf extends nn.Module {
  constructor(readonly vae: nn.VAE, private readonly eps: Tensor) {
    super();
  }
  forward(x: Tensor): Tensor {
    return this.vae.negativeElbo(x, this.eps).loss.reshape([1]);
  }
}

/** Loaded once for both backends (parsing 70,000 digits is the slow part of the learning test). */
let mnist: kiln.data.Mnist | undefined;

forEachBackend((backend) => {
  const heavy = heavyIt(backend);
  describe('reparameterize', () => {
    it('is mu + exp(logVar / 2) · eps, and its samples have mean mu and std exp(logVar / 2)', () => {
      kiln.tidy(() => {
        const mu = T(randND([3, 4], 1));
        const logVar = T(randND([3, 4], 2, -2, 1));
        const eps = T(randND([3, 4], 3));
        const want = mu.dataSync().map((m, i) => m + Math.exp(logVar.dataSync()[i] / 2) * eps.dataSync()[i]);
        assertClose(nn.reparameterize(mu, logVar, eps).dataSync(), want, { atol: 1e-6 }, 'with given eps');
        kiln.setSeed(5);
        const n = 20000;
        const z = nn.reparameterize(kiln.tensor([[1.5, -2]]).expand([n, 2]), kiln.tensor([[Math.log(0.25), Math.log(4)]]).expand([n, 2]));
        assertClose(z.mean(0).dataSync(), [1.5, -2], { atol: 0.04 }, 'sample mean');
        assertClose(z.sub(z.mean(0)).square().mean(0).sqrt().dataSync(), [0.5, 2], { atol: 0.04, rtol: 0.02 }, 'sample std');
      });
      kiln.tidy(() => expectThrows(() => nn.reparameterize(kiln.zeros([2, 3]), kiln.zeros([2, 4])), 'reparameterize', '[2, 3]', '[2, 4]'));
    });
  });

  describe('nn.VAE', () => {
    it('negativeElbo equals the float64 reconstruction cross-entropy + Gaussian KL', () => {
      const vae = tinyVae(6, 5, 3, 10);
      kiln.tidy(() => {
        const x = kiln.tensor(Float32Array.from([1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 1]), [2, 6]);
        const eps = T(randND([2, 3], 11));
        const terms = vae.negativeElbo(x, eps);
        const out = vae.forward(x, eps);
        const ref = negativeElboRef(out.logits.dataSync(), x.dataSync(), out.mu.dataSync(), out.logVar.dataSync(), 2);
        assertClose([terms.reconstruction.dataSync()[0], terms.kl.dataSync()[0], terms.loss.dataSync()[0]], [ref.reconstruction, ref.kl, ref.reconstruction + ref.kl], { atol: 1e-4, rtol: 1e-5 });
        expect(vae.sample(4).shape).toEqual([4, 6]);
      });
      expectThrows(() => kiln.tidy(() => new nn.VAE(new nn.Linear(6, 5), new nn.Linear(3, 6), 3).encode(kiln.zeros([2, 6]))), 'VAE', 'must output [batch, 6]', '[2, 5]');
      vae.dispose();
    });

    it('gradients of the ELBO path match finite differences (ops and every VAE parameter)', async () => {
      // The functional path: KL(mu, logVar) + BCE(decode(mu + exp(logVar/2)·eps), x), decode = z·W.
      const x = T({ shape: [2, 4], data: [1, 0, 1, 1, 0, 0, 1, 0] });
      const eps = T(randND([2, 3], 20));
      await opGradCheck('negative ELBO', [uniform([2, 3], 21), uniform([2, 3], 22), uniform([3, 4], 23)], ([mu, logVar, w]) =>
        kiln.losses.binaryCrossEntropy(nn.reparameterize(mu, logVar, eps).matmul(w), x, { reduction: 'sum' }).add(kiln.gaussianKl(mu, logVar)),
      );
      const vae = tinyVae(4, 3, 2, 30);
      const module = new ElboOf(vae, T(randND([2, 2], 31)));
      await gradCheck(module, { shape: [2, 4], data: [1, 0, 1, 1, 0, 0, 1, 0] });
      module.dispose();
      kiln.dispose([x, eps]);
    });
  });

  // Fast enough on both backends (~1 s native); real digits, so MNIST is loaded once here.
  heavy(`learns real digits: held-out ELBO far above the pixel-marginal model, with a used latent${backend === 'wasm' ? ' (wasm)' : ''}`, () => {
    const before = kiln.memory().numTensors;
    mnist ??= kiln.data.loadMnist();
    const pick = (images: Uint8Array, from: number, n: number) => kiln.tidy(() => {
      kiln.setSeed(99);
      const p = kiln.tensor(kiln.data.scale(images.subarray(from * 784, (from + n) * 784), 1 / 255), [n, 784]);
      return kiln.randu([n, 784]).less(p).cast('float32');
    });
    const train = pick(mnist.trainImages, 0, 500);
    const heldOut = pick(mnist.testImages, 0, 200);
    const vae = tinyVae(784, 64, 8, 40);
    const optimizer = new kiln.optim.Adam(vae.parameters(), { lr: 3e-3 });
    kiln.setSeed(1);
    // Held-out -ELBO computed here from the encoder and decoder alone (own sample, KL and cross-entropy).
    const heldOutElbo = () => kiln.noGrad(() => kiln.tidy(() => {
      const h = vae.encoder.forward(heldOut);
      const mu = h.slice([0, 0], [-1, 8]);
      const logVar = h.slice([0, 8], [-1, 8]);
      const z = mu.add(logVar.mul(0.5).exp().mul(kiln.randn([200, 8], { seed: 7 })));
      const logits = vae.decoder.forward(z);
      const rec = logits.softplus().sub(logits.mul(heldOut)).sum().dataSync()[0] / 200;
      const kl = mu.square().add(logVar.exp()).sub(logVar).sub(1).sum().dataSync()[0] / 400;
      return { total: rec + kl, kl };
    }));
    const initial = heldOutElbo();
    for (let epoch = 0; epoch < 60; epoch++) {
      for (let b = 0; b < 5; b++) {
        kiln.tidy(() => {
          optimizer.zeroGrad();
          vae.negativeElbo(train.slice([b * 100, 0], [100, -1])).loss.backward();
          optimizer.step();
        });
      }
    }
    const trained = heldOutElbo();
    // The best a model can do without a latent: each pixel on with its frequency in the training
    // digits (smoothed), scored on the held-out digits. A VAE whose latent carries no information
    // (a detached sample, a collapsed posterior) cannot beat it; one that uses z must, by far.
    const marginal = kiln.tidy(() => {
      const p = train.sum(0).add(1).div(502);
      const nll = heldOut.mul(p.log()).add(heldOut.neg().add(1).mul(p.neg().add(1).log())).neg();
      return nll.sum().dataSync()[0] / 200;
    });
    expect(initial.total, '784 ln 2 = 543 nats at the start').toBeGreaterThan(500);
    expect(trained.total, `held-out -ELBO after training (KL ${trained.kl}) vs ${marginal} for per-pixel frequencies`).toBeLessThan(marginal - 15);
    expect(trained.kl, 'nats of information in the latent').toBeGreaterThan(5);
    optimizer.dispose();
    vae.dispose();
    kiln.dispose([train, heldOut]);
    expect(kiln.memory().numTensors).toBe(before);
  });
});
