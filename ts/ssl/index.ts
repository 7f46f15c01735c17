/**
 * kiln.ssl: self-supervised learning. Contrastive pre-training (SimCLR: two augmented views,
 * NT-Xent) with `fit`, masked-patch reconstruction (MAE) with a small ViT, and the linear probe
 * that measures what a representation learned.
 */

export { contrastiveBatches, contrastiveLoss, type ContrastiveBatchesOptions } from './views.js';
export { embed, linearProbe, type Encoder, type LinearProbeData, type LinearProbeOptions } from './probe.js';
export { MaskedAutoencoder, patchify, patchPositions, randomPatchMask, maskedPatchError, type MaskedAutoencoderOptions, type PatchMask } from './mae.js';
