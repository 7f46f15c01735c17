/**
 * GAN objectives (Goodfellow et al. 2014) on discriminator logits, as binary cross-entropy
 * with logits so they stay finite however confident the discriminator gets.
 *
 *   const dLoss = discriminatorLoss(D(real), D(G(z).detach()));
 *   const gLoss = generatorLoss(D(G(z)));
 */

import type { Tensor } from '../tensor.js';
import { tidy } from '../engine.js';
import { onesLike, zerosLike } from '../ops/creation.js';
import { binaryCrossEntropy } from '../losses.js';

/**
 * The discriminator's loss: real examples labelled 1, generated ones 0, each term averaged over
 * its batch and the two summed. realLogits [batch, ...], fakeLogits [batch', ...] -> [].
 */
export function discriminatorLoss(realLogits: Tensor, fakeLogits: Tensor): Tensor {
  return tidy(() => binaryCrossEntropy(realLogits, onesLike(realLogits)).add(binaryCrossEntropy(fakeLogits, zerosLike(fakeLogits))));
}

/**
 * The non-saturating generator loss, -log D(G(z)) = BCE(D(G(z)), 1). Its gradient is largest
 * where D rejects the fakes, unlike the minimax log(1 - D(G(z))), which vanishes there early in
 * training. fakeLogits [batch, ...] -> [].
 */
export function generatorLoss(fakeLogits: Tensor): Tensor {
  return tidy(() => binaryCrossEntropy(fakeLogits, onesLike(fakeLogits)));
}
