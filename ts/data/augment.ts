/**
 * Random augmentations of image batches, on host Float32Arrays so they run while the DataLoader
 * assembles a batch (pass one as its `transform`). Layout is NCHW, [batch, channels, height,
 * width], the layout Kiln's convolutions use (as in PyTorch); an MNIST row is [1, 28, 28].
 *
 * Each factory returns a transform with its own seeded generator: calling it again draws new
 * random choices, and two transforms made with the same seed make the same choices in sequence.
 */

import { Random, resolveSeed, type Seed } from './random.js';

/** A batch transform: x [batch * C * H * W] with its shape [batch, C, H, W] -> a new Float32Array, same shape. */
export type BatchTransform = (x: Float32Array, shape: readonly number[]) => Float32Array;

/** Options shared by the random augmentations. */
export interface AugmentOptions {
  /** Same seed, same sequence of random choices. Omitted: random. */
  seed?: Seed;
}

interface Nchw {
  n: number;
  c: number;
  h: number;
  w: number;
}

function nchw(op: string, x: Float32Array, shape: readonly number[]): Nchw {
  if (!(x instanceof Float32Array)) throw new Error(`${op}: expected a Float32Array batch`);
  if (!Array.isArray(shape) || shape.length !== 4 || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new Error(`${op}: expects an NCHW batch [batch, channels, height, width], got shape ${JSON.stringify(shape)} (an MNIST row is [1, 28, 28])`);
  }
  const [n, c, h, w] = shape;
  if (x.length !== n * c * h * w) throw new Error(`${op}: ${x.length} values do not match shape [${shape.join(', ')}] (${n * c * h * w} values)`);
  return { n, c, h, w };
}

function generator(op: string, options: AugmentOptions): Random {
  return new Random(resolveSeed(op, options.seed));
}

/**
 * Mirrors each image left-right with probability `p` (all its channels together).
 * [batch, C, H, W] -> [batch, C, H, W]
 */
export function randomFlipHorizontal(p = 0.5, options: AugmentOptions = {}): BatchTransform {
  if (!(p >= 0 && p <= 1)) throw new Error(`randomFlipHorizontal: p must be a probability in [0, 1], got ${p}`);
  const rng = generator('randomFlipHorizontal', options);
  return (x, shape) => {
    const { n, c, h, w } = nchw('randomFlipHorizontal', x, shape);
    const out = x.slice();
    const image = c * h * w;
    for (let i = 0; i < n; i++) {
      if (!(rng.next() < p)) continue;
      for (let row = i * image; row < (i + 1) * image; row += w) out.subarray(row, row + w).reverse();
    }
    return out;
  };
}

/** Options of `randomCropWithPadding`. */
export interface CropOptions extends AugmentOptions {
  /** Value of the padding that shifts in at the borders. Default 0. */
  fill?: number;
}

/**
 * Pads each image by `pad` pixels on every side and crops a random H x W window back out: a random
 * shift of up to `pad` pixels in each direction, the same for all channels of an image.
 * [batch, C, H, W] -> [batch, C, H, W]
 */
export function randomCropWithPadding(pad: number, options: CropOptions = {}): BatchTransform {
  if (!Number.isInteger(pad) || pad < 0) throw new Error(`randomCropWithPadding: pad must be a non-negative integer, got ${pad}`);
  const fill = options.fill ?? 0;
  const rng = generator('randomCropWithPadding', options);
  return (x, shape) => {
    const { n, c, h, w } = nchw('randomCropWithPadding', x, shape);
    // Working on the shift directly avoids materializing the padded image: output pixel (y, x)
    // reads input pixel (y + dy, x + dx) when that is inside the image, else the fill value.
    const out = new Float32Array(x.length).fill(fill);
    for (let i = 0; i < n; i++) {
      const dy = rng.int(2 * pad + 1) - pad;
      const dx = rng.int(2 * pad + 1) - pad;
      const x0 = Math.max(0, -dx);
      const x1 = Math.min(w, w - dx);
      if (x1 <= x0) continue;
      for (let ch = 0; ch < c; ch++) {
        const plane = (i * c + ch) * h * w;
        for (let y = Math.max(0, -dy); y < Math.min(h, h - dy); y++) {
          const src = plane + (y + dy) * w;
          out.set(x.subarray(src + x0 + dx, src + x1 + dx), plane + y * w + x0);
        }
      }
    }
    return out;
  };
}

/**
 * Adds independent N(0, std²) noise to every value. [batch, C, H, W] -> [batch, C, H, W]
 */
export function gaussianNoise(std: number, options: AugmentOptions = {}): BatchTransform {
  if (!(std >= 0) || !Number.isFinite(std)) throw new Error(`gaussianNoise: std must be a non-negative number, got ${std}`);
  const rng = generator('gaussianNoise', options);
  return (x, shape) => {
    nchw('gaussianNoise', x, shape);
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = x[i] + std * rng.normal();
    return out;
  };
}

/** Applies transforms left to right: compose(crop, flip) crops, then flips. */
export function compose(...transforms: BatchTransform[]): BatchTransform {
  transforms.forEach((t, i) => {
    if (typeof t !== 'function') throw new Error(`compose: argument ${i} is not a transform (a function (x, shape) => Float32Array)`);
  });
  // An empty composition still returns a copy: callers may assume the output is theirs to modify.
  return (x, shape) => transforms.reduce((acc, t) => t(acc, shape), transforms.length === 0 ? x.slice() : x);
}
