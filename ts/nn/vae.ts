/**
 * Variational autoencoder (Kingma & Welling 2014) with a Gaussian posterior and a Bernoulli
 * decoder, built around any encoder and decoder modules:
 *
 *   encoder: [batch, ...x] -> [batch, 2·latent]  (mean and log-variance, side by side)
 *   decoder: [batch, latent] -> [batch, ...x]    (logits of each pixel being on)
 *
 *   const vae = new nn.VAE(encoder, decoder, 20);
 *   const { loss } = vae.negativeElbo(x);   // nats per example; minimize it
 */

import type { Tensor } from '../tensor.js';
import { randn } from '../ops/creation.js';
import { split } from '../ops/shape.js';
import { exp } from '../ops/elementwise.js';
import { binaryCrossEntropy, gaussianKl } from '../losses.js';
import { layerArgs } from './layer-args.js';
import { Module } from './module.js';

/**
 * The reparameterization trick: z = mu + exp(logVar / 2) · eps with eps ~ N(0, I), so z is a
 * differentiable function of mu and logVar and gradients reach the encoder through the sample.
 * mu, logVar: [batch, latent] (eps: the same shape, drawn from the global generator if omitted) -> [batch, latent]
 */
export function reparameterize(mu: Tensor, logVar: Tensor, eps?: Tensor): Tensor {
  if (mu.shape.join() !== logVar.shape.join()) {
    throw new Error(`reparameterize: mu ${mu.dtype} [${mu.shape.join(', ')}] and logVar ${logVar.dtype} [${logVar.shape.join(', ')}] must have the same shape`);
  }
  const noise = eps ?? randn([...mu.shape]);
  return mu.add(exp(logVar.mul(0.5)).mul(noise));
}

/** What VAE.forward returns. */
export interface VAEOutput {
  /** Decoder logits, x's shape. */
  logits: Tensor;
  /** Posterior mean and log-variance, [batch, latent]. */
  mu: Tensor;
  logVar: Tensor;
  /** The sample the decoder saw, [batch, latent]. */
  z: Tensor;
}

/** The negative ELBO and its two terms, each averaged over the batch (nats per example). */
export interface NegativeElbo {
  loss: Tensor;
  /** -E_q[log p(x | z)]: Bernoulli cross-entropy summed over x's elements. */
  reconstruction: Tensor;
  /** KL(q(z | x) || N(0, I)), summed over latent dims. */
  kl: Tensor;
}

/** Options of {@link VAE}: what its forward pass decodes in eval mode. */
export interface VAEOptions {
  /**
   * What `forward` decodes in eval mode: 'sample' (default) a reparameterized sample as in
   * training, 'mean' the posterior mean (deterministic reconstructions and embeddings). The
   * negative ELBO always samples, so it stays a bound.
   */
  evalLatent?: 'sample' | 'mean';
}

export class VAE extends Module<[Tensor], VAEOutput> {
  readonly evalLatent: 'sample' | 'mean';

  constructor(readonly encoder: Module, readonly decoder: Module, readonly latent: number, options: VAEOptions = {}) {
    super();
    const args = layerArgs('VAE');
    if (!(encoder instanceof Module)) args.fail('encoder', 'an nn.Module', encoder);
    if (!(decoder instanceof Module)) args.fail('decoder', 'an nn.Module', decoder);
    args.positiveInt('latent', latent);
    this.evalLatent = args.oneOf('evalLatent', args.options(options).evalLatent, ['sample', 'mean'], 'sample');
  }

  /** Posterior parameters: x [batch, ...] -> { mu, logVar } each [batch, latent]. */
  encode(x: Tensor): { mu: Tensor; logVar: Tensor } {
    const h = this.encoder.forward(x);
    if (h.shape.length !== 2 || h.shape[1] !== 2 * this.latent) {
      throw new Error(`VAE: the encoder must output [batch, ${2 * this.latent}] (mean and log-variance of ${this.latent} latents), got [${h.shape.join(', ')}]`);
    }
    const [mu, logVar] = split(h, 2, 1);
    return { mu, logVar };
  }

  /**
   * x -> posterior, one reparameterized sample z (the posterior mean in eval mode with
   * evalLatent 'mean'), decoder logits (eps: optional fixed noise [batch, latent], always sampled).
   */
  forward(x: Tensor, eps?: Tensor): VAEOutput {
    const useMean = eps === undefined && !this.training && this.evalLatent === 'mean';
    return this.decode(x, useMean, eps);
  }

  private decode(x: Tensor, useMean: boolean, eps?: Tensor): VAEOutput {
    const { mu, logVar } = this.encode(x);
    const z = useMean ? mu : reparameterize(mu, logVar, eps);
    return { logits: this.decoder.forward(z), mu, logVar, z };
  }

  /**
   * -ELBO = E_q[-log p(x | z)] + KL(q(z | x) || p(z)), one-sample estimate, averaged over the
   * batch. x: [batch, ...] in [0, 1] (binary for a true likelihood) -> scalars, nats per example.
   */
  negativeElbo(x: Tensor, eps?: Tensor): NegativeElbo {
    const { logits, mu, logVar } = this.decode(x, false, eps);
    const reconstruction = binaryCrossEntropy(logits, x, { reduction: 'sum' }).div(x.shape[0]);
    const kl = gaussianKl(mu, logVar);
    return { loss: reconstruction.add(kl), reconstruction, kl };
  }

  /** Decoder outputs for z ~ N(0, I): n samples of p(x | z)'s mean (sigmoid of the logits). -> [n, ...x] */
  sample(n: number): Tensor {
    return this.decoder.forward(randn([n, this.latent])).sigmoid();
  }
}
