/**
 * Writing images to disk (Node only): PNG compressed with node:zlib, written atomically.
 *
 *   kiln.viz.saveImageGrid('out/vae/samples.png', samples.reshape([64, 28, 28]), { scale: 2 });
 */

import fs from 'node:fs';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import type { Tensor } from '../tensor.js';
import { writeFileAtomic } from '../io/files.js';
import { encodePng, type Image } from './png.js';
import { imageGrid, type GridOptions, type HostImages } from './grid.js';

/** Writes `image` as a PNG file, creating its directory if needed. */
export function savePng(file: string, image: Image): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  writeFileAtomic(file, encodePng(image, (raw) => deflateSync(raw, { level: 9 })));
}

/** Lays images in [0, 1] out as a grid (see imageGrid) and writes it as a PNG file. */
export function saveImageGrid(file: string, images: Tensor | HostImages, options: GridOptions = {}): Image {
  const image = imageGrid(images, options);
  savePng(file, image);
  return image;
}
