/**
 * BasicBlock: the residual block of ResNet-18/34 (He et al. 2016), PyTorch's layout and names
 * (conv1, bn1, conv2, bn2, downsample.0 / downsample.1), so torchvision state dicts load unchanged.
 *
 *   out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))
 *
 * The shortcut is the identity when the shape is kept, otherwise a 1x1 convolution with the
 * block's stride followed by BatchNorm (the "projection" shortcut, option B of the paper).
 */

import type { Tensor } from '../tensor.js';
import { relu } from '../ops/elementwise.js';
import { BatchNorm2d } from './batchnorm.js';
import { Sequential } from './containers.js';
import { Conv2d } from './conv.js';
import { deriveSeed } from './init.js';
import { layerArgs } from './layer-args.js';
import { Module } from './module.js';

/** Options of `nn.BasicBlock` (ResNet's two-convolution block). */
export interface BasicBlockOptions {
  /** Stride of the first 3x3 convolution and of the projection shortcut (default 1; 2 halves H and W). */
  stride?: number;
  /** BatchNorm after each convolution (default true). Without it the convolutions get a bias. */
  batchNorm?: boolean;
  /** Seeds the convolutions' initializers. */
  seed?: number;
}

export class BasicBlock extends Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d | null;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d | null;
  /** Projection shortcut (1x1 conv, stride, [BatchNorm]), or null for the identity. */
  readonly downsample: Sequential | null;

  /** inChannels -> outChannels; a projection shortcut is made when the stride or channel count changes. */
  constructor(readonly inChannels: number, readonly outChannels: number, options: BasicBlockOptions = {}) {
    super();
    const args = layerArgs('BasicBlock');
    args.positiveInt('inChannels', inChannels);
    args.positiveInt('outChannels', outChannels);
    const o = args.options(options);
    const stride = args.positiveInt('stride', o.stride, 1);
    const bn = args.flag('batchNorm', o.batchNorm, true);
    const seed = args.seed(o.seed);
    // A bias before BatchNorm is cancelled by its mean subtraction, so it is left out (as torchvision).
    const conv = (cin: number, k: number, s: number, i: number) =>
      new Conv2d(cin, outChannels, k, { stride: s, padding: k === 3 ? 1 : 0, bias: !bn, seed: deriveSeed(seed, i) });
    const project = stride !== 1 || inChannels !== outChannels;
    [this.conv1, this.bn1, this.conv2, this.bn2, this.downsample] = args.build(() => [
      conv(inChannels, 3, stride, 0),
      bn ? new BatchNorm2d(outChannels) : null,
      conv(outChannels, 3, 1, 1),
      bn ? new BatchNorm2d(outChannels) : null,
      project ? new Sequential(...[conv(inChannels, 1, stride, 2), ...(bn ? [new BatchNorm2d(outChannels)] : [])]) : null,
    ]);
  }

  /** [batch, inChannels, H, W] -> [batch, outChannels, ceil(H / stride), ceil(W / stride)] */
  forward(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.inChannels) {
      throw new Error(`BasicBlock(${this.inChannels} -> ${this.outChannels}): expected input [batch, ${this.inChannels}, height, width], got ${x.dtype} [${x.shape.join(', ')}]`);
    }
    let y = this.conv1.forward(x);
    if (this.bn1) y = this.bn1.forward(y);
    y = this.conv2.forward(relu(y));
    if (this.bn2) y = this.bn2.forward(y);
    const shortcut = this.downsample ? this.downsample.forward(x) : x;
    return relu(y.add(shortcut));
  }
}
