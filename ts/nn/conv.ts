/**
 * Conv2d and ConvTranspose2d layers (NCHW), PyTorch's layouts and default initialization, so
 * PyTorch state dicts load unchanged: weight U(±1/√fanIn), bias U(±1/√fanIn) with
 * fanIn = weight.shape[1]·kh·kw (what kaiming_uniform_(a=√5) works out to).
 */

import type { Tensor } from '../tensor.js';
import { conv2d, conv2dPadding, convTranspose2d, pair, type Padding2d } from '../ops/conv.js';
import { deriveSeed, fanInUniform, type Initializer, type InitializerName } from './init.js';
import { layerArgs } from './layer-args.js';
import { Module } from './module.js';

/** Options of `nn.Conv2d`: stride, padding, dilation, groups, bias, initializer and seed. */
export interface Conv2dLayerOptions {
  /** One number or [height, width] (default 1). */
  stride?: number | [number, number];
  /** A number, [height, width], [top, bottom, left, right], 'valid' or 'same' (default 0). */
  padding?: Padding2d;
  /** One number or [height, width] (default 1). */
  dilation?: number | [number, number];
  /** Channel groups; inChannels and outChannels must both be divisible by it (default 1). */
  groups?: number;
  /** Learn a bias per output channel (default true). */
  bias?: boolean;
  /** Weight initializer (default fanInUniform, PyTorch's default). */
  init?: InitializerName | Initializer;
  /** Bias initializer (default fanInUniform with the weight's fanIn, as PyTorch). */
  biasInit?: InitializerName | Initializer;
  /** Seeds the weight and bias initializers. */
  seed?: number;
}

/** Options of `nn.ConvTranspose2d`: those of Conv2d plus the output padding. */
export interface ConvTranspose2dLayerOptions extends Conv2dLayerOptions {
  /** Extra rows/columns at the bottom/right of the output (default 0; < stride or < dilation). */
  outputPadding?: number | [number, number];
}

/** What both layers share: sizes, options, parameters and the input check. */
abstract class ConvBase extends Module {
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly dilation: [number, number];
  readonly padding: Padding2d;
  readonly groups: number;
  readonly weight: Tensor;
  /** [outChannels], or null without bias. */
  readonly bias: Tensor | null;

  constructor(readonly inChannels: number, readonly outChannels: number, kernelSize: number | [number, number], options: Conv2dLayerOptions, weightShape: (k: [number, number], groups: number) => number[]) {
    super();
    const name = this.constructor.name;
    const args = layerArgs(name);
    args.positiveInt('inChannels', inChannels);
    args.positiveInt('outChannels', outChannels);
    const o = args.options(options);
    this.kernelSize = pair(name, 'kernelSize', kernelSize, 1, 1);
    this.stride = pair(name, 'stride', o.stride, 1, 1);
    this.dilation = pair(name, 'dilation', o.dilation, 1, 1);
    this.padding = o.padding ?? 0;
    conv2dPadding(name, this.padding, [], [], this.stride, this.dilation); // rejects a malformed padding now, not at the first forward
    this.groups = o.groups ?? 1;
    if (!Number.isInteger(this.groups) || this.groups < 1 || inChannels % this.groups !== 0 || outChannels % this.groups !== 0) {
      throw new Error(`${name}: groups must be a positive integer dividing inChannels (${inChannels}) and outChannels (${outChannels}), got ${this.groups}`);
    }
    const shape = weightShape(this.kernelSize, this.groups);
    const init = args.init('init', o.init, fanInUniform);
    const biasInit = args.init('biasInit', o.biasInit, fanInUniform);
    const bias = args.flag('bias', o.bias, true);
    const seed = args.seed(o.seed);
    const fanIn = shape[1] * shape[2] * shape[3];
    [this.weight, this.bias] = args.build(() => [
      this.registerParameter(init(shape, { seed: deriveSeed(seed, 0) })),
      bias ? this.registerParameter(biasInit([outChannels], { seed: deriveSeed(seed, 1), fanIn, fanOut: shape[0] * shape[2] * shape[3] })) : null,
    ]);
  }

  /** Throws unless x is [batch, inChannels, height, width]. */
  protected checkInput(x: Tensor): void {
    if (x.rank !== 4 || x.shape[1] !== this.inChannels) {
      const [kh, kw] = this.kernelSize;
      throw new Error(`${this.constructor.name}(${this.inChannels} -> ${this.outChannels}, kernel ${kh}x${kw}): expected input [batch, ${this.inChannels}, height, width], got ${x.dtype} [${x.shape.join(', ')}]`);
    }
  }
}

/** 2-D convolution layer. Weight [outChannels, inChannels / groups, kh, kw]. */
export class Conv2d extends ConvBase {
  constructor(inChannels: number, outChannels: number, kernelSize: number | [number, number], options: Conv2dLayerOptions = {}) {
    super(inChannels, outChannels, kernelSize, options, ([kh, kw], groups) => [outChannels, inChannels / groups, kh, kw]);
  }

  /** [batch, inChannels, height, width] -> [batch, outChannels, outHeight, outWidth] (see kiln.conv2d). */
  forward(x: Tensor): Tensor {
    this.checkInput(x);
    return conv2d(x, this.weight, { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups, bias: this.bias });
  }
}

/** 2-D transposed convolution layer (upsampling). Weight [inChannels, outChannels / groups, kh, kw]. */
export class ConvTranspose2d extends ConvBase {
  readonly outputPadding: [number, number];

  constructor(inChannels: number, outChannels: number, kernelSize: number | [number, number], options: ConvTranspose2dLayerOptions = {}) {
    // Checked before the base class builds the weights, so a bad outputPadding is not reported as something else.
    const o = layerArgs('ConvTranspose2d').options(options);
    const outputPadding = pair('ConvTranspose2d', 'outputPadding', o.outputPadding, 0, 0);
    if (o.padding === 'same' && (outputPadding[0] !== 0 || outputPadding[1] !== 0)) {
      throw new Error(`ConvTranspose2d: padding 'same' sets the output size to input · stride itself; outputPadding ${JSON.stringify(o.outputPadding)} cannot be combined with it`);
    }
    super(inChannels, outChannels, kernelSize, o, ([kh, kw], groups) => [inChannels, outChannels / groups, kh, kw]);
    this.outputPadding = outputPadding;
  }

  /** [batch, inChannels, height, width] -> [batch, outChannels, outHeight, outWidth] (see kiln.convTranspose2d). */
  forward(x: Tensor): Tensor {
    this.checkInput(x);
    return convTranspose2d(x, this.weight, {
      stride: this.stride,
      padding: this.padding,
      outputPadding: this.padding === 'same' ? undefined : this.outputPadding,
      dilation: this.dilation,
      groups: this.groups,
      bias: this.bias,
    });
  }
}
