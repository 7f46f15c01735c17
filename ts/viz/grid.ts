/**
 * Lays a batch of images out as one picture (torchvision's make_grid): images in [0, 1] as a
 * tensor [N, H, W], [N, 1, H, W] or [N, 3, H, W] (or one image [H, W]) become a grey or RGB Image
 * of `cols` columns with `padding` pixels between tiles.
 */

import type { Tensor } from '../tensor.js';
import type { Image } from './png.js';

/** Options of `imageGrid`: layout, padding, scale and value range. */
export interface GridOptions {
  /** Tiles per row (default ceil(sqrt(N))). */
  cols?: number;
  /** Pixels between and around tiles (default 2). */
  padding?: number;
  /** Grey level of the padding, in [0, 1] (default 1: white). */
  padValue?: number;
  /** Upscale each pixel to scale x scale (nearest neighbour, default 1), so small images are visible. */
  scale?: number;
  /** Values mapped to black and white; anything outside is clamped (default [0, 1]). */
  range?: [number, number];
}

/** Host-side pixels with their shape, for callers that already read a tensor back. */
export interface HostImages {
  data: ArrayLike<number>;
  shape: readonly number[];
}

/** (N, C, H, W) of an accepted shape, or an error naming what is accepted. */
function layout(shape: readonly number[]): [number, 1 | 3, number, number] {
  const bad = () => new Error(`imageGrid: expected images [N, H, W], [N, 1, H, W], [N, 3, H, W] or [H, W], got [${shape.join(', ')}]`);
  if (shape.length === 2) return [1, 1, shape[0], shape[1]];
  if (shape.length === 3) return [shape[0], 1, shape[1], shape[2]];
  if (shape.length === 4 && (shape[1] === 1 || shape[1] === 3)) return [shape[0], shape[1] as 1 | 3, shape[2], shape[3]];
  throw bad();
}

function positiveInt(name: string, v: number, min: number): number {
  if (!Number.isInteger(v) || v < min) throw new Error(`imageGrid: ${name} must be an integer >= ${min}, got ${v}`);
  return v;
}

/** Lays images out in one grid image, ready for `encodePng`: [N, H, W], [N, 1, H, W] or [N, 3, H, W] (or one [H, W]) -> an RGB or grey Image. */
export function imageGrid(images: Tensor | HostImages, options: GridOptions = {}): Image {
  const shape = images.shape;
  const [n, c, h, w] = layout(shape);
  if (n === 0 || h === 0 || w === 0) throw new Error(`imageGrid: no pixels to draw in [${shape.join(', ')}]`);
  const data = 'dataSync' in images ? images.dataSync() : images.data;
  const cols = positiveInt('cols', options.cols ?? Math.ceil(Math.sqrt(n)), 1);
  const pad = positiveInt('padding', options.padding ?? 2, 0);
  const scale = positiveInt('scale', options.scale ?? 1, 1);
  const [lo, hi] = options.range ?? [0, 1];
  if (!(hi > lo)) throw new Error(`imageGrid: range must be [low, high] with high > low, got [${lo}, ${hi}]`);
  const rows = Math.ceil(n / cols);
  const tileH = h * scale;
  const tileW = w * scale;
  const width = cols * tileW + (cols + 1) * pad;
  const height = rows * tileH + (rows + 1) * pad;
  const toByte = (v: number) => (Number.isNaN(v) ? 0 : Math.round(255 * Math.min(1, Math.max(0, (v - lo) / (hi - lo)))));
  const out = new Uint8Array(width * height * c).fill(toByte(lo + (options.padValue ?? 1) * (hi - lo)));
  for (let i = 0; i < n; i++) {
    const x0 = pad + (i % cols) * (tileW + pad);
    const y0 = pad + Math.floor(i / cols) * (tileH + pad);
    for (let y = 0; y < tileH; y++) {
      for (let x = 0; x < tileW; x++) {
        const src = ((i * c) * h + Math.floor(y / scale)) * w + Math.floor(x / scale);
        const dst = ((y0 + y) * width + x0 + x) * c;
        for (let ch = 0; ch < c; ch++) out[dst + ch] = toByte(data[src + ch * h * w]);
      }
    }
  }
  return { width, height, channels: c, data: out };
}
