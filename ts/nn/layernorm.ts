/**
 * LayerNorm (Ba et al.): normalizes each sample over its last dims, (x − mean)/√(var + eps) with
 * the biased variance, then applies a learned elementwise scale and shift, as PyTorch; one fused
 * kernel (kiln.layerNorm).
 */

import { Tensor } from '../tensor.js';
import { full } from '../ops/creation.js';
import { describe } from '../ops/util.js';
import { layerNorm } from '../ops/layer-norm.js';
import { layerArgs } from './layer-args.js';
import { Module } from './module.js';

/** Options of `nn.LayerNorm`. */
export interface LayerNormOptions {
  /** Added to the variance (default 1e-5). */
  eps?: number;
  /** Learn weight (init 1) and bias (init 0) of shape normalizedShape (default true). */
  elementwiseAffine?: boolean;
}

export class LayerNorm extends Module {
  readonly normalizedShape: number[];
  /** normalizedShape, or null without elementwiseAffine. */
  readonly weight: Tensor | null;
  /** normalizedShape, or null without elementwiseAffine. */
  readonly bias: Tensor | null;
  readonly eps: number;

  /** normalizedShape: the trailing dims to normalize over, e.g. 512 or [seq, 512]. */
  constructor(normalizedShape: number | number[], options: LayerNormOptions = {}) {
    super();
    const args = layerArgs('LayerNorm');
    const dims = typeof normalizedShape === 'number' ? [normalizedShape] : Array.isArray(normalizedShape) ? [...normalizedShape] : [];
    if (dims.length === 0 || !dims.every((d) => Number.isSafeInteger(d) && d >= 1)) {
      args.fail('normalizedShape', 'a positive integer or a non-empty array of them', normalizedShape);
    }
    this.normalizedShape = dims;
    const o = args.options(options);
    this.eps = args.positive('eps', o.eps, 1e-5);
    const affine = args.flag('elementwiseAffine', o.elementwiseAffine, true);
    [this.weight, this.bias] = args.build(() => [
      affine ? this.registerParameter(full(dims, 1)) : null,
      affine ? this.registerParameter(full(dims, 0)) : null,
    ]);
  }

  /** [..., ...normalizedShape] -> same shape */
  forward(x: Tensor): Tensor {
    // Checked first: the shape test below reads x.shape (a bare TypeError for a non-tensor).
    if (!(x instanceof Tensor)) throw new Error(`LayerNorm([${this.normalizedShape.join(', ')}]): argument 'x' must be a Tensor, got ${describe(x)}`);
    const k = this.normalizedShape.length;
    const trailing = x.shape.slice(x.rank - k);
    if (x.rank < k || trailing.join() !== this.normalizedShape.join()) {
      throw new Error(`LayerNorm([${this.normalizedShape.join(', ')}]): expected input [..., ${this.normalizedShape.join(', ')}], got ${x.dtype} [${x.shape.join(', ')}]`);
    }
    return layerNorm(x, { weight: this.weight, bias: this.bias, axis: -k, eps: this.eps });
  }
}
