/**
 * A 2-D Conv followed by BatchNormalization, a residual Add (or two-input Sum) and/or an
 * activation, as exported CNNs spell them (ResNet: Conv, BatchNormalization, Relu, and at the end
 * of each block Conv, BatchNormalization, Add(identity), Relu; SqueezeNet: Conv, Relu), run as
 * one Kiln conv2d: the normalization folded into the filters and bias, the residual added and
 * the activation applied by the kernel to each block of output as it is written (kiln-core's
 * params::conv::Epilogue). Without fusion each BatchNormalization, Add and Relu is a pass of its
 * own over the activations (ResNet-50 batch 8: a third of its time), which onnxruntime folds into
 * its convolution at load. The residual must have the convolution's output shape (no
 * broadcasting), or the original nodes run.
 *
 * Folding, per output channel o, with s = scale / √(var + ε):
 *   W'[o] = W[o] · s[o],   b'[o] = (b[o] − mean[o]) · s[o] + B[o]
 * is computed at the first inference run and kept (computing it on every run made ResNet-50
 * batch 1 twice as slow). The kept fold is dropped whenever the model's mode is set (train(),
 * eval(): fit calls both) or a state dict is loaded (OnnxModel), so a fine-tuned model infers
 * with its new weights. Whenever gradients could reach the folded parameters (recording on and
 * one of them requires gradients) the original nodes run instead, so fine-tuning in eval mode
 * (frozen BatchNorm statistics) trains the filters, scale and B as the graph defines them. A
 * Conv with an activation and no BatchNormalization folds nothing and always runs fused in eval
 * mode: the fused op's gradient is exact.
 */

import { isGradEnabled, noGrad } from '../../autograd.js';
import { keep, tidy } from '../../engine.js';
import { conv2d, type Conv2dOptions, type ConvActivation } from '../../ops/conv.js';
import { add, mul, rsqrt, sub } from '../../ops/elementwise.js';
import { reshape } from '../../ops/shape.js';
import type { Tensor } from '../../tensor.js';
import { constantsIn, type Inputs, type OnnxNode, type RunContext } from '../node.js';
import { conv2dGeometry } from '../ops/conv.js';
import { FusedNode } from './fused-node.js';
import type { GraphIndex } from './graph.js';

/** ONNX activations the convolution applies itself, with Kiln's name and alpha (ONNX's defaults). */
export const CONV_ACTIVATIONS: Record<string, (node: OnnxNode) => { activation: ConvActivation; alpha: number }> = {
  Relu: () => ({ activation: 'relu', alpha: 0 }),
  LeakyRelu: (node) => ({ activation: 'leakyRelu', alpha: node.float('alpha', 0.01) }),
  Elu: (node) => ({ activation: 'elu', alpha: node.float('alpha', 1) }),
  Sigmoid: () => ({ activation: 'sigmoid', alpha: 0 }),
  Tanh: () => ({ activation: 'tanh', alpha: 0 }),
};

/** The node reading `value` alone if it is one of the fusable activations. */
function activationAfter(value: string, graph: GraphIndex): OnnxNode | undefined {
  for (const opType of Object.keys(CONV_ACTIVATIONS)) {
    const node = graph.soleReader(value, opType);
    if (node !== undefined) return node;
  }
  return undefined;
}

/**
 * The Add (or Sum of two) reading `value` alone, with the other addend; not one that another
 * fused node took already (ResNet's downsampling branch ends in the same Add: the first Conv in
 * graph order takes it, the other keeps its Conv+BatchNormalization).
 */
function residualAfter(value: string, graph: GraphIndex, taken: (node: OnnxNode) => boolean): { add: OnnxNode; other: string } | undefined {
  for (const opType of ['Add', 'Sum']) {
    const add = graph.soleReader(value, opType);
    if (add === undefined || taken(add) || add.inputs.length !== 2 || add.outputs.length !== 1) continue;
    const other = add.inputs[0] === value ? add.inputs[1] : add.inputs[0];
    if (other !== '' && other !== value) return { add, other };
  }
  return undefined;
}

/**
 * Matches Conv -> BatchNormalization? -> Add(residual)? -> activation? (at least one of the
 * three) from `conv`; `taken` says which nodes another fused node swallowed already.
 */
export function fuseConv(conv: OnnxNode, graph: GraphIndex, taken: (node: OnnxNode) => boolean = () => false): FusedNode | undefined {
  if (conv.opType !== 'Conv' || conv.outputs.length !== 1) return undefined;
  const bn = graph.soleReader(conv.outputs[0], 'BatchNormalization');
  // Only a BatchNormalization normalizing the conv's output, with no training outputs.
  const norm = bn !== undefined && bn.inputs[0] === conv.outputs[0] && bn.outputs.filter((o) => o !== '').length === 1 ? bn : undefined;
  const residual = residualAfter((norm ?? conv).outputs[0], graph, taken);
  const last = residual?.add ?? norm ?? conv;
  const act = activationAfter(last.outputs[0], graph);
  if (last === conv && act === undefined) return undefined;
  const replaced = [conv, norm, residual?.add, act].filter((n): n is OnnxNode => n !== undefined);
  const inputs = [conv.inputs[0], conv.inputs[1], conv.inputs[2] ?? '', residual?.other ?? '', ...(norm?.inputs.slice(1, 5) ?? [])];
  const pattern = replaced.map((n) => n.opType).join('+');
  const { activation, alpha } = act === undefined ? { activation: null, alpha: 0 } : CONV_ACTIVATIONS[act.opType](act);
  const fold = norm === undefined ? undefined : new BatchNormFold(norm.float('epsilon', 1e-5));
  return new ConvFusedNode(pattern, replaced, inputs, (act ?? last).outputs[0], conv, residual !== undefined, activation, alpha, fold);
}

/**
 * The fused Conv(+BatchNormalization)(+Add)(+activation) node; the NCHWc layout pass
 * (onnx/layout/) runs the same convolution blocked with `filters`, `conv`, `activation`, `alpha`.
 * Inputs: x, w, bias, the residual addend ('' if none), then the four BatchNormalization
 * statistics if any.
 */
export class ConvFusedNode extends FusedNode {
  constructor(
    pattern: string,
    replaced: OnnxNode[],
    inputs: string[],
    output: string,
    /** The Conv node (its attributes give the geometry). */
    readonly conv: OnnxNode,
    /** Whether an Add's other addend (input 3) is added before the activation. */
    readonly hasResidual: boolean,
    readonly activation: ConvActivation | null,
    readonly alpha: number,
    readonly fold: BatchNormFold | undefined,
  ) {
    super(
      pattern,
      replaced,
      inputs,
      output,
      (args: Inputs, context: RunContext) => {
        const [x, w, bias, addend, ...statistics] = args;
        // The (folded) filters are kept in the prepared call: made from constants only.
        if (x === undefined || w === undefined || x.rank !== 4 || w.rank !== 4 || x.dtype !== 'float32' || w.dtype !== 'float32' || !constantsIn(context, [w, bias, ...statistics])) return undefined;
        const geometry = conv2dGeometry(x, w, conv);
        if (hasResidual && (addend === undefined || addend.dtype !== 'float32' || !sameShape(addend.shape, conv2dOutputShape(x, w, geometry)))) return undefined;
        const filters = filtersFor(fold, w, bias, statistics);
        if (filters === undefined) return undefined;
        return (a) => [conv2d(a[0]!, filters.w, { ...geometry, bias: filters.bias ?? null, residual: a[3] ?? null, activation, alpha })];
      },
      () => fold?.forget(),
    );
  }

  /**
   * The filters and bias the convolution runs with (BatchNormalization folded in, kept between
   * runs), or undefined when the original nodes must run (see BatchNormFold.get).
   */
  filters(w: Tensor, bias: Tensor | undefined, statistics: Array<Tensor | undefined>): ConvFilters | undefined {
    return filtersFor(this.fold, w, bias, statistics);
  }
}

type ConvFilters = { w: Tensor; bias: Tensor | undefined };

function filtersFor(fold: BatchNormFold | undefined, w: Tensor, bias: Tensor | undefined, statistics: Array<Tensor | undefined>): ConvFilters | undefined {
  if (w.rank !== 4 || w.dtype !== 'float32' || (bias !== undefined && bias.dtype !== 'float32')) return undefined;
  return fold === undefined ? { w, bias } : fold.get(w, bias, statistics);
}

const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/** [N, O, OH, OW] of conv2d(x, w) with a Conv node's resolved geometry. */
export function conv2dOutputShape(x: Pick<Tensor, 'shape'>, w: Pick<Tensor, 'shape'>, geometry: Conv2dOptions): number[] {
  const [top, bottom, left, right] = geometry.padding as [number, number, number, number];
  const [sh, sw] = geometry.stride as [number, number];
  const [dh, dw] = geometry.dilation as [number, number];
  const size = (n: number, before: number, after: number, k: number, d: number, s: number) => Math.floor((n + before + after - d * (k - 1) - 1) / s) + 1;
  return [x.shape[0], w.shape[0], size(x.shape[2], top, bottom, w.shape[2], dh, sh), size(x.shape[3], left, right, w.shape[3], dw, sw)];
}

/** BatchNormalization folded into a convolution's filters and bias, computed once and kept. */
export class BatchNormFold {
  #sources: Tensor[] = [];
  #folded: { w: Tensor; bias: Tensor } | undefined;

  constructor(readonly eps: number) {}

  /**
   * The folded filters and bias for these parameters: the kept ones if they were folded from
   * the same tensors, else folded now. Undefined (run the original nodes) when gradients could
   * reach a parameter, or the statistics are not float32 [out_channels].
   */
  get(w: Tensor, bias: Tensor | undefined, statistics: Array<Tensor | undefined>): { w: Tensor; bias: Tensor } | undefined {
    const [scale, shift, mean, variance] = statistics;
    if (scale === undefined || shift === undefined || mean === undefined || variance === undefined) return undefined;
    const sources = [w, bias, scale, shift, mean, variance].filter((t): t is Tensor => t !== undefined);
    const channels = w.shape[0];
    if (statistics.some((t) => t!.dtype !== 'float32' || t!.rank !== 1 || t!.shape[0] !== channels)) return undefined;
    if (isGradEnabled() && sources.some((t) => t.requiresGrad)) return undefined;
    const same = this.#folded !== undefined && sources.length === this.#sources.length && sources.every((t, i) => t === this.#sources[i]);
    if (!same) {
      this.forget();
      this.#folded = noGrad(() =>
        tidy(() => {
          const s = mul(scale, rsqrt(add(variance, this.eps)));
          const folded = { w: mul(w, reshape(s, [channels, 1, 1, 1])), bias: add(mul(bias === undefined ? mul(mean, -1) : sub(bias, mean), s), shift) };
          keep(folded.w);
          keep(folded.bias);
          return folded;
        }),
      );
      this.#sources = sources;
    }
    return this.#folded;
  }

  /** Drops the kept fold (the parameters may have changed); the next run folds again. */
  forget(): void {
    this.#folded?.w.dispose();
    this.#folded?.bias.dispose();
    this.#folded = undefined;
    this.#sources = [];
  }
}
