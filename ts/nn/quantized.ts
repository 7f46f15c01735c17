/**
 * Quantization of a model for inference: `quantize(model, { bits: 8 | 4 })` replaces
 * every nn.Linear with a QuantizedLinear and every nn.Conv2d with a QuantizedConv2d, holding int8
 * (or packed int4) weights, float32 scales and the float32 bias, so a model is about 4x (int8) or
 * 7x (int4) smaller and never holds its f32 weights.
 *
 * With int8 weights on the CPU backends (native and WASM) the layers also quantize their input per
 * call (W8A8, `activations: 'int8'`: one dynamic scale per Linear input row and per conv input
 * image) and multiply int8 by int8 (linearW8A8 / conv2dW8A8), which is faster there than the
 * weight-only alternative (`activations: 'float32'`: the input stays float and the weights are
 * dequantized on the fly, linearQ8 / conv2dQ8) for Linear and Conv2d layers at batch 1 and large
 * batches (docs/deployment.md has the figures). The GPU backend keeps 'float32' (it has no int8
 * product). int4 layers always take float32 activations.
 *
 * Quantized layers have no parameters, only buffers: they are inference-only. Their state dict
 * ('0.weight' int8, '0.scales', '0.bias') saves to safetensors like any other; to load, rebuild the
 * float architecture, `quantize` it with the same options, then `loadStateDict`:
 *
 *   const q = kiln.quantize(model, { bits: 4 });
 *   saveModel('out/q', { stateDict: q.stateDict(), config: { layers, quantization: quantizationConfig(q) } });
 */

import type { Tensor } from '../tensor.js';
import { noGrad } from '../autograd.js';
import { getBackend } from '../engine.js';
import type { Padding2d } from '../ops/conv.js';
import { INT4_BLOCK, conv2dQ4, conv2dQ8, conv2dW8A8, linearQ4, linearQ8, linearW8A8, quantizeInt4, quantizeInt8 } from '../ops/quant.js';
import { Conv2d } from './conv.js';
import { Linear } from './linear.js';
import { Module, type AnyModule } from './module.js';

/** Weight bits of a quantized layer: 8 (int8 per output channel) or 4 (int4 per block of a row). */
export type QuantizeBits = 8 | 4;

/** Options of `kiln.quantize`: the bit width and, for int4, the block size. */
export interface QuantizeOptions {
  /** 8: int8 per output channel; 4: int4 per block of a row. */
  bits: QuantizeBits;
  /** int4 only: weights per scale along a row (default 32). */
  block?: number;
  /**
   * 'int8' (bits 8 only; the default of bits 8 on the native backend) quantizes the input per call
   * and multiplies int8 by int8 (W8A8: faster than float natively); 'float32' (the default of
   * bits 4, and of bits 8 on WASM, where W8A8 is slower for now) keeps each layer's input float
   * (weight-only quantization).
   */
  activations?: QuantizedActivations;
}

/** How an int8 layer takes its input: quantized to int8 per call, or as float32. */
export type QuantizedActivations = 'int8' | 'float32';

/**
 * The activations option checked; unset, 'int8' for bits 8 on the CPU backends, native and WASM
 * (where W8A8 is the faster choice) and 'float32' otherwise.
 */
function activationsOf(op: string, options: QuantizeOptions, bits: QuantizeBits): QuantizedActivations {
  const cpu = getBackend() === 'native' || getBackend() === 'wasm';
  const a = options?.activations ?? (bits === 8 && cpu ? 'int8' : 'float32');
  if (a !== 'int8' && a !== 'float32') throw new Error(`${op}: activations must be 'int8' or 'float32', got ${String(a)}`);
  if (a === 'int8' && bits !== 8) throw new Error(`${op}: int8 activations need bits 8 (int4 layers take float32 activations), got bits ${bits}`);
  return a;
}

/** What to store in a saved model's config so the same layers can be rebuilt before loading. */
export interface QuantizationConfig {
  bits: QuantizeBits;
  block: number;
  /** How the layers take their input ('int8' only with bits 8). */
  activations: QuantizedActivations;
}

function checkOptions(op: string, options: QuantizeOptions): QuantizationConfig {
  const bits = options?.bits;
  if (bits !== 8 && bits !== 4) throw new Error(`${op}: bits must be 8 or 4, got ${String(bits)}`);
  const activations = activationsOf(op, options, bits);
  // int8 has one scale per row, so block is ignored there (quantizationConfig reports it as 0).
  if (bits === 8) return { bits, block: 0, activations };
  const block = options.block ?? INT4_BLOCK;
  if (!Number.isInteger(block) || block < 1) throw new Error(`${op}: block must be a positive integer, got ${block}`);
  return { bits, block, activations };
}

export class QuantizedLinear extends Module {
  /** int8 [outFeatures, inFeatures] (bits 8), or packed int8 [outFeatures, ceil(inFeatures/2)] (bits 4). */
  readonly weight: Tensor;
  /** float32 [outFeatures] (bits 8) or [outFeatures, ceil(inFeatures/block)] (bits 4). */
  readonly scales: Tensor;
  /** float32 [outFeatures], or null without bias. */
  readonly bias: Tensor | null;
  readonly bits: QuantizeBits;
  /** Weights per scale (int4); 0 for int8, whose scale covers a whole row. */
  readonly block: number;
  /** 'int8': the input is quantized per row each call (linearW8A8); 'float32': it is not (linearQ8 / linearQ4). */
  readonly activations: QuantizedActivations;
  readonly inFeatures: number;
  readonly outFeatures: number;

  /** Quantizes `linear`'s weight (the Linear itself is left as it is). */
  constructor(linear: Linear, options: QuantizeOptions) {
    super();
    if (!(linear instanceof Linear)) throw new Error('QuantizedLinear: expected an nn.Linear to quantize');
    const { bits, block, activations } = checkOptions('QuantizedLinear', options);
    this.activations = activations;
    this.bits = bits;
    this.block = block;
    this.inFeatures = linear.inFeatures;
    this.outFeatures = linear.outFeatures;
    const { q, scales } = noGrad(() => (bits === 8 ? quantizeInt8(linear.weight) : quantizeInt4(linear.weight, block)));
    this.weight = this.registerBuffer(q);
    this.scales = this.registerBuffer(scales);
    // detach shares the bias's buffer (no copy) and cuts it from the training graph.
    this.bias = linear.bias === null ? null : this.registerBuffer(linear.bias.detach());
  }

  /** [..., inFeatures] -> [..., outFeatures]. Inference-only (see ops/quant.ts). */
  forward(x: Tensor): Tensor {
    const shape = x.shape;
    if (shape.length === 0 || shape[shape.length - 1] !== this.inFeatures) {
      throw new Error(`QuantizedLinear(${this.inFeatures} -> ${this.outFeatures}, int${this.bits}): expected input [..., ${this.inFeatures}], got ${x.dtype} [${shape.join(', ')}]`);
    }
    if (this.bits === 4) return linearQ4(x, this.weight, this.scales, this.bias, this.block);
    return this.activations === 'int8' ? linearW8A8(x, this.weight, this.scales, this.bias) : linearQ8(x, this.weight, this.scales, this.bias);
  }
}

/**
 * A Conv2d with int8 (per output channel) or int4 (blocks along the flattened
 * inChannels/groups · kh · kw of each filter) weights. The Rust kernels (conv2dQ8 / conv2dQ4)
 * convolve with the packed filters directly, expanding at most 64 filters at a time next to the
 * im2col band, so the float32 weight never exists, not even per call.
 */
export class QuantizedConv2d extends Module {
  /** int8 [out, in/groups·kh·kw] (bits 8), or packed int8 [out, ceil(in/groups·kh·kw / 2)] (bits 4). */
  readonly weight: Tensor;
  readonly scales: Tensor;
  readonly bias: Tensor | null;
  readonly bits: QuantizeBits;
  readonly block: number;
  /** 'int8': the input is quantized per output position each call (conv2dW8A8); 'float32': it is not. */
  readonly activations: QuantizedActivations;
  readonly inChannels: number;
  readonly outChannels: number;
  /** The float weight's shape [out, in/groups, kh, kw]. */
  readonly weightShape: number[];
  readonly stride: [number, number];
  readonly padding: Padding2d;
  readonly dilation: [number, number];
  readonly groups: number;

  constructor(conv: Conv2d, options: QuantizeOptions) {
    super();
    if (!(conv instanceof Conv2d)) throw new Error('QuantizedConv2d: expected an nn.Conv2d to quantize');
    const { bits, block, activations } = checkOptions('QuantizedConv2d', options);
    this.activations = activations;
    this.bits = bits;
    this.block = block;
    this.inChannels = conv.inChannels;
    this.outChannels = conv.outChannels;
    this.weightShape = [...conv.weight.shape];
    this.stride = conv.stride;
    this.padding = conv.padding;
    this.dilation = conv.dilation;
    this.groups = conv.groups;
    const rows = noGrad(() => conv.weight.reshape([this.weightShape[0], this.rowLength]));
    const { q, scales } = noGrad(() => (bits === 8 ? quantizeInt8(rows) : quantizeInt4(rows, block)));
    rows.dispose();
    this.weight = this.registerBuffer(q);
    this.scales = this.registerBuffer(scales);
    this.bias = conv.bias === null ? null : this.registerBuffer(conv.bias.detach());
  }

  private get rowLength(): number {
    return this.weightShape[1] * this.weightShape[2] * this.weightShape[3];
  }

  /** [batch, inChannels, height, width] -> [batch, outChannels, outHeight, outWidth]. Inference-only. */
  forward(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.inChannels) {
      throw new Error(`QuantizedConv2d(${this.inChannels} -> ${this.outChannels}, int${this.bits}): expected input [batch, ${this.inChannels}, height, width], got ${x.dtype} [${x.shape.join(', ')}]`);
    }
    const kernel: [number, number] = [this.weightShape[2], this.weightShape[3]];
    const options = { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups, bias: this.bias };
    if (this.bits === 4) return conv2dQ4(x, this.weight, this.scales, kernel, { ...options, block: this.block });
    return this.activations === 'int8' ? conv2dW8A8(x, this.weight, this.scales, kernel, options) : conv2dQ8(x, this.weight, this.scales, kernel, options);
  }
}

/**
 * Replaces every nn.Linear and nn.Conv2d inside `model` (direct properties, arrays of modules
 * such as Sequential's layers, at any depth) by a QuantizedLinear / QuantizedConv2d, IN PLACE,
 * and returns `model` (or the new layer when `model` is itself one). The replaced layers are
 * disposed. A layer shared by two places becomes one shared quantized layer.
 */
export function quantize<M extends AnyModule>(model: M, options: QuantizeOptions): M | QuantizedLinear | QuantizedConv2d {
  const op = 'quantize';
  if (!(model instanceof Module)) throw new Error(`${op}: expected an nn.Module, got ${model === null ? 'null' : typeof model}`);
  checkOptions(op, options);
  if (model.parameters().some((p) => p.device === 'gpu')) {
    // The packed-weight kernels are CPU (native and WASM) inference kernels; the GPU has none.
    throw new Error(`${op}: quantized layers run on the CPU backends (native and WASM), and this model has parameters on the GPU: call model.to('cpu') first`);
  }
  if (model instanceof Linear || model instanceof Conv2d) {
    const q = model instanceof Linear ? new QuantizedLinear(model, options) : new QuantizedConv2d(model, options);
    model.dispose();
    return q;
  }
  const replaced = new Map<Linear | Conv2d, QuantizedLinear | QuantizedConv2d>();
  const quantizable = (v: unknown): v is Linear | Conv2d => v instanceof Linear || v instanceof Conv2d;
  const swap = (m: Linear | Conv2d): QuantizedLinear | QuantizedConv2d => {
    let q = replaced.get(m);
    if (q === undefined) replaced.set(m, (q = m instanceof Linear ? new QuantizedLinear(m, options) : new QuantizedConv2d(m, options)));
    return q;
  };
  for (const [, parent] of model.namedModules()) {
    const props = parent as unknown as Record<string, unknown>;
    for (const [key, value] of Object.entries(props)) {
      if (quantizable(value)) props[key] = swap(value);
      else if (Array.isArray(value)) value.forEach((v, i) => quantizable(v) && (value[i] = swap(v)));
    }
  }
  for (const layer of replaced.keys()) layer.dispose();
  return model;
}

/**
 * The options the quantized layers of `model` were made with (to save in a model's config), or
 * null if it has none. Throws if its layers were quantized with different options.
 */
export function quantizationConfig(model: AnyModule): QuantizationConfig | null {
  let found: QuantizationConfig | null = null;
  for (const [name, m] of model.namedModules()) {
    if (!(m instanceof QuantizedLinear || m instanceof QuantizedConv2d)) continue;
    if (found !== null && (found.bits !== m.bits || found.block !== m.block || found.activations !== m.activations)) {
      throw new Error(
        `quantizationConfig: layers differ ('${name}' is int${m.bits} block ${m.block} with ${m.activations} activations, ` +
          `an earlier one int${found.bits} block ${found.block} with ${found.activations} activations)`,
      );
    }
    found = { bits: m.bits, block: m.block, activations: m.activations };
  }
  return found;
}
