/**
 * A masked autoencoder (He et al. 2021, "Masked Autoencoders Are Scalable Vision Learners") for
 * small images: the image is cut into patches, a random 75% of them are hidden, a ViT encoder sees
 * only the visible patches (with their position embeddings), and a light decoder, given the
 * encoded visible tokens plus a learned mask token at every hidden position, predicts the hidden
 * patches' pixels. The loss is the mean squared error on the hidden patches only.
 */

import { tidy } from '../engine.js';
import { Module } from '../nn/module.js';
import { Linear } from '../nn/linear.js';
import { LayerNorm } from '../nn/layernorm.js';
import { TransformerEncoderLayer } from '../nn/transformer.js';
import { SinusoidalPositionalEncoding } from '../nn/positional.js';
import { randn, tensor, zeros } from '../ops/creation.js';
import { mul, square, sub } from '../ops/elementwise.js';
import { mean, sum } from '../ops/reduce.js';
import { concat, gather, permute, reshape, scatterAdd } from '../ops/shape.js';
import type { Tensor } from '../tensor.js';
import { Random } from '../data/random.js';

/**
 * Non-overlapping square patches, row by row. images [B, C, H, W] (H, W multiples of `patch`)
 * -> [B, (H/patch)·(W/patch), patch·patch·C]
 */
export function patchify(images: Tensor, patch: number): Tensor {
  const [b, c, h, w] = images.shape as [number, number, number, number];
  if (images.shape.length !== 4 || h % patch !== 0 || w % patch !== 0) {
    throw new Error(`patchify: expected images [batch, channels, height, width] with height and width multiples of ${patch}, got [${images.shape.join(', ')}]`);
  }
  const [gh, gw] = [h / patch, w / patch];
  return tidy(() => reshape(permute(reshape(images, [b, c, gh, patch, gw, patch]), [0, 2, 4, 3, 5, 1]), [b, gh * gw, patch * patch * c]));
}

/**
 * MAE's fixed 2-D sin-cos position embedding: the first half of the features encode a patch's
 * row, the second half its column. A grid of rows x cols patches, row by row -> [rows·cols, dim]
 */
export function patchPositions(rows: number, cols: number, dim: number): Tensor {
  if (dim % 2 !== 0) throw new Error(`patchPositions: dim must be even (half for rows, half for columns), got ${dim}`);
  return tidy(() => {
    const half = new SinusoidalPositionalEncoding(dim / 2);
    const rowOf = tensor(Int32Array.from({ length: rows * cols }, (_, k) => Math.floor(k / cols)), [rows * cols]);
    const colOf = tensor(Int32Array.from({ length: rows * cols }, (_, k) => k % cols), [rows * cols]);
    return concat([gather(half.table(rows), rowOf, 0), gather(half.table(cols), colOf, 0)], 1);
  });
}

/** Which patches each image hides: indices into the flattened [B · L] patch rows. */
export interface PatchMask {
  /** int32 [B · visible]: rows of the patches the encoder sees, image by image. */
  visible: Tensor;
  /** float32 [B, L, 1]: 1 where the patch is hidden (and scored), 0 where visible. */
  hidden: Tensor;
  visibleCount: number;
}

/** A random mask hiding round(ratio · L) of the L patches of each of B images. */
export function randomPatchMask(batch: number, patches: number, ratio: number, rng: Random): PatchMask {
  if (!(ratio > 0 && ratio < 1)) throw new Error(`randomPatchMask: ratio must be in (0, 1), got ${ratio}`);
  const visibleCount = Math.max(1, patches - Math.round(ratio * patches));
  const visible = new Int32Array(batch * visibleCount);
  const hidden = new Float32Array(batch * patches).fill(1);
  for (let i = 0; i < batch; i++) {
    const order = rng.permutation(patches);
    for (let k = 0; k < visibleCount; k++) {
      visible[i * visibleCount + k] = i * patches + order[k]!;
      hidden[i * patches + order[k]!] = 0;
    }
  }
  return { visible: tensor(visible, [batch * visibleCount]), hidden: tensor(hidden, [batch, patches, 1]), visibleCount };
}

/** The size of a {@link MaskedAutoencoder}: image shape, patch size, and encoder and decoder transformer widths and depths. */
export interface MaskedAutoencoderOptions {
  /** Image [channels, height, width] (default MNIST's [1, 28, 28]). */
  imageShape?: [number, number, number];
  /** Patch side in pixels (default 7: 16 patches of 49 pixels on MNIST). */
  patch?: number;
  /** Encoder width, depth, heads (default 64, 2, 4). */
  dim?: number;
  depth?: number;
  heads?: number;
  /** Decoder width and depth (default 64, 1): the decoder only serves pre-training, so it stays light. */
  decoderDim?: number;
  decoderDepth?: number;
  seed?: number;
}

export class MaskedAutoencoder extends Module {
  readonly patch: number;
  readonly patches: number;
  readonly patchSize: number;
  readonly patchEmbed: Linear;
  readonly position: Tensor;
  readonly encoderLayers: TransformerEncoderLayer[];
  readonly encoderNorm: LayerNorm;
  readonly decoderEmbed: Linear;
  readonly maskToken: Tensor;
  readonly decoderPosition: Tensor;
  readonly decoderLayers: TransformerEncoderLayer[];
  readonly decoderNorm: LayerNorm;
  readonly head: Linear;

  constructor(options: MaskedAutoencoderOptions = {}) {
    super();
    const [c, h, w] = options.imageShape ?? [1, 28, 28];
    this.patch = options.patch ?? 7;
    if (h % this.patch !== 0 || w % this.patch !== 0) throw new Error(`MaskedAutoencoder: patch ${this.patch} must divide the image [${c}, ${h}, ${w}]`);
    this.patches = (h / this.patch) * (w / this.patch);
    this.patchSize = this.patch * this.patch * c;
    const dim = options.dim ?? 64;
    const decoderDim = options.decoderDim ?? 64;
    const seed = options.seed ?? 0;
    const layer = (d: number, i: number) => new TransformerEncoderLayer(d, options.heads ?? 4, { dimFeedforward: 2 * d, dropout: 0, seed: seed + 10 + i });
    this.patchEmbed = new Linear(this.patchSize, dim, { seed });
    // Fixed, not learned (as in MAE): every patch knows where it is from the first step.
    this.position = this.registerBuffer(patchPositions(h / this.patch, w / this.patch, dim));
    this.encoderLayers = Array.from({ length: options.depth ?? 2 }, (_, i) => layer(dim, i));
    this.encoderNorm = new LayerNorm(dim);
    this.decoderEmbed = new Linear(dim, decoderDim, { seed: seed + 2 });
    this.maskToken = this.registerParameter(randn([decoderDim], { std: 0.02, seed: seed + 3 }));
    this.decoderPosition = this.registerBuffer(patchPositions(h / this.patch, w / this.patch, decoderDim));
    this.decoderLayers = Array.from({ length: options.decoderDepth ?? 1 }, (_, i) => layer(decoderDim, 100 + i));
    this.decoderNorm = new LayerNorm(decoderDim);
    this.head = new Linear(decoderDim, this.patchSize, { seed: seed + 5 });
  }

  /** Encoded tokens of the given patch rows. patches [B, L, P], rows int32 [B · V] -> [B, V, dim] */
  private encodeRows(patches: Tensor, rows: Tensor, visibleCount: number): Tensor {
    const [b, l] = patches.shape as [number, number];
    const tokens = this.patchEmbed.forward(patches).add(this.position); // [B, L, dim]
    let x = reshape(gather(reshape(tokens, [b * l, -1]), rows, 0), [b, visibleCount, -1]);
    for (const layer of this.encoderLayers) x = layer.forward(x);
    return this.encoderNorm.forward(x);
  }

  /**
   * Reconstruction of every patch from the visible ones. images [B, C, H, W] -> predicted
   * patches [B, L, P] (only the hidden ones are trained).
   */
  reconstruct(images: Tensor, mask: PatchMask): Tensor {
    const patches = patchify(images, this.patch);
    const [b, l] = patches.shape as [number, number];
    const encoded = this.encodeRows(patches, mask.visible, mask.visibleCount);
    const visible = reshape(this.decoderEmbed.forward(encoded), [b * mask.visibleCount, -1]);
    // Every position starts as the mask token; the visible ones get their encoded tokens instead.
    const placed = reshape(scatterAdd(zeros([b * l, visible.shape[1]!]), mask.visible, visible, 0), [b, l, -1]);
    let x = placed.add(mul(mask.hidden, this.maskToken)).add(this.decoderPosition);
    for (const layer of this.decoderLayers) x = layer.forward(x);
    return this.head.forward(this.decoderNorm.forward(x));
  }

  /** `reconstruct` is the forward pass (the mask comes with the call). */
  forward(images: Tensor): Tensor {
    throw new Error(`MaskedAutoencoder.forward: call reconstruct(images, mask) or loss(images, mask) (got images [${images.shape.join(', ')}])`);
  }

  /** Mean squared error over the hidden patches' pixels. images [B, C, H, W] -> [] */
  loss(images: Tensor, mask: PatchMask): Tensor {
    return tidy(() => maskedPatchError(this.reconstruct(images, mask), patchify(images, this.patch), mask.hidden));
  }

  /**
   * The representation for a linear probe: the encoder over all patches, tokens averaged.
   * images [B, C, H, W] -> [B, dim]
   */
  encode(images: Tensor): Tensor {
    return tidy(() => {
      const patches = patchify(images, this.patch);
      const [b, l] = patches.shape as [number, number];
      const all = tensor(Int32Array.from({ length: b * l }, (_, i) => i), [b * l]);
      return mean(this.encodeRows(patches, all, l), 1);
    });
  }
}

/**
 * Mean squared error of predicted against true patches, over hidden patches only.
 * predicted, target: [B, L, P]; hidden: [B, L, 1] of 0/1 -> []
 */
export function maskedPatchError(predicted: Tensor, target: Tensor, hidden: Tensor): Tensor {
  return tidy(() => {
    const perPixel = mul(square(sub(predicted, target)), hidden);
    return sum(perPixel).div(mul(sum(hidden), target.shape[2]!));
  });
}
