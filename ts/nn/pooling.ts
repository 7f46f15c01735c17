/**
 * Pooling layers over images [batch, channels, height, width]: MaxPool2d and AvgPool2d (Rust
 * kernels), GlobalAvgPool2d and AdaptiveAvgPool2d (compositions of mean and matmul).
 */

import type { Tensor } from '../tensor.js';
import { tensor } from '../ops/creation.js';
import { matmul } from '../ops/matmul.js';
import { avgPool2d, maxPool2d, type AvgPool2dOptions, type MaxPool2dOptions, type Size2d } from '../ops/pool.js';
import { Module } from './module.js';

/** Max over each window. [batch, channels, height, width] -> [batch, channels, outH, outW] (see kiln.maxPool2d). */
export class MaxPool2d extends Module {
  /** kernelSize: n or [height, width]; stride defaults to the kernel size, padding to 0. */
  constructor(readonly kernelSize: Size2d, readonly options: MaxPool2dOptions = {}) {
    super();
  }

  forward(x: Tensor): Tensor {
    return maxPool2d(x, this.kernelSize, this.options);
  }
}

/** Mean over each window. [batch, channels, height, width] -> [batch, channels, outH, outW] (see kiln.avgPool2d). */
export class AvgPool2d extends Module {
  /** kernelSize: n or [height, width]; stride defaults to the kernel size, padding to 0, countIncludePad to true. */
  constructor(readonly kernelSize: Size2d, readonly options: AvgPool2dOptions = {}) {
    super();
  }

  forward(x: Tensor): Tensor {
    return avgPool2d(x, this.kernelSize, this.options);
  }
}

function checkImages(layer: string, x: Tensor): void {
  if (x.rank !== 4) throw new Error(`${layer}: expected input [batch, channels, height, width], got ${x.dtype} [${x.shape.join(', ')}]`);
}

/** Mean over height and width. [batch, channels, height, width] -> [batch, channels] */
export class GlobalAvgPool2d extends Module {
  forward(x: Tensor): Tensor {
    checkImages('GlobalAvgPool2d', x);
    return x.mean([2, 3]);
  }
}

/**
 * Averaging weights of adaptive pooling along one axis, [out, size]: output i averages inputs
 * floor(i·size/out) .. ceil((i + 1)·size/out) − 1 (PyTorch's windows, which may overlap).
 */
function adaptiveWeights(size: number, out: number): Tensor {
  const w = new Float32Array(out * size);
  for (let i = 0; i < out; i++) {
    const start = Math.floor((i * size) / out);
    const end = Math.ceil(((i + 1) * size) / out);
    for (let j = start; j < end; j++) w[i * size + j] = 1 / (end - start);
  }
  return tensor(w, [out, size]);
}

/**
 * Average pooling to a fixed output size, whatever the input size (PyTorch's AdaptiveAvgPool2d).
 * [batch, channels, height, width] -> [batch, channels, outH, outW]. Adaptive averaging is
 * separable, so it is two small matmuls with averaging matrices: Ah · x · Awᵀ.
 */
export class AdaptiveAvgPool2d extends Module {
  readonly outputSize: [number, number];

  /** outputSize: n or [height, width] (positive integers). */
  constructor(outputSize: Size2d) {
    super();
    const size: [number, number] = typeof outputSize === 'number' ? [outputSize, outputSize] : Array.isArray(outputSize) ? [outputSize[0], outputSize[1]] : [NaN, NaN];
    if (!size.every((d) => Number.isInteger(d) && d >= 1) || (Array.isArray(outputSize) && outputSize.length !== 2)) {
      throw new Error(`AdaptiveAvgPool2d: outputSize must be a positive integer or [height, width], got ${JSON.stringify(outputSize)}`);
    }
    this.outputSize = size;
  }

  forward(x: Tensor): Tensor {
    const [oh, ow] = this.outputSize;
    checkImages(`AdaptiveAvgPool2d([${oh}, ${ow}])`, x);
    const [h, w] = [x.shape[2], x.shape[3]];
    if (h === 0 || w === 0) throw new Error(`AdaptiveAvgPool2d([${oh}, ${ow}]): input [${x.shape.join(', ')}] has an empty spatial dimension`);
    if (oh === 1 && ow === 1) return x.mean([2, 3], true);
    const rows = adaptiveWeights(h, oh);
    const cols = adaptiveWeights(w, ow);
    // [oh, H] @ [N, C, H, W] @ [W, ow]ᵀ -> [N, C, oh, ow]; matmul broadcasts the batch dims.
    const pooledRows = matmul(rows, x);
    try {
      return matmul(pooledRows, cols, false, true);
    } finally {
      // Autograd keeps its own references; only the JS handles go.
      for (const t of [rows, cols, pooledRows]) t.dispose();
    }
  }
}
