/**
 * Generated samples for the callbacks that show them (TensorBoard, Dashboard): the user's
 * function returns a batch of images, laid out here as one grid picture.
 */

import { noGrad } from '../autograd.js';
import { tidy } from '../engine.js';
import type { Tensor } from '../tensor.js';
import { imageGrid, type GridOptions, type HostImages } from '../viz/grid.js';
import type { Image } from '../viz/png.js';
import type { TrainingContext } from './callbacks.js';

/**
 * Makes samples to show at an epoch's end: images in [0, 1] as a tensor [N, H, W], [N, 1, H, W]
 * or [N, 3, H, W] (a generator's output, reconstructions), or host pixels with their shape.
 * Runs without gradient recording; a returned tensor is disposed after drawing.
 */
export type SampleFn = (epoch: number, ctx: TrainingContext) => Tensor | HostImages;

/** Calls `fn` and draws its images as one grid. */
export function drawSamples(fn: SampleFn, epoch: number, ctx: TrainingContext, grid: GridOptions = {}): Image {
  let image: Image | undefined;
  // The image is assigned, not returned, so tidy does not walk its pixel bytes looking for tensors.
  noGrad(() =>
    tidy(() => {
      image = imageGrid(fn(epoch, ctx), grid);
    }),
  );
  return image!;
}
