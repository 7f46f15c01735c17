/**
 * The nodes the NCHWc layout pass (plan.ts) puts in a graph: reorders into and out of the blocked
 * layout, and blocked forms of the convolutions, MaxPool, AveragePool, GlobalAveragePool, Relu,
 * Add and Dropout. A blocked value
 * is named `<value>#nchwc` and holds [N, ceil(C/16), H, W, 16]; its channel count C is known at
 * load (from the convolutions' weights), so a node that cannot run blocked at run time (shapes
 * its fast path does not take, a fused node that declines) converts its blocked inputs back,
 * runs the original node, and blocks its output again: results never depend on the pass beyond
 * float rounding.
 */

import { conv2dNchwcConcatFor, conv2dNchwcFor, fromNchwc, NCHWC_BLOCK, packNchwcFilters, toNchwc, unaryNchwcFor } from '../../ops/conv-nchwc.js';
import { backend, keep, tidy } from '../../engine.js';
import { noGrad } from '../../autograd.js';
import type { Conv2dOptions } from '../../ops/conv.js';
import type { Tensor } from '../../tensor.js';
import { OnnxNode, type Inputs, type Prepared, type RunContext } from '../node.js';
import { OPS } from '../ops/index.js';
import { conv2dGeometry } from '../ops/conv.js';
import { poolWindow } from '../ops/pool.js';
import { FusedNode } from '../fusion/index.js';
import { ConvFusedNode, conv2dOutputShape } from '../fusion/conv.js';
import { ConvConcatNode, filterSets } from '../fusion/conv-concat.js';

/** The name of `value`'s blocked form. */
export const blockedName = (value: string): string => `${value}#nchwc`;

/** A node of the blocked plan: run by OnnxModel.run as fused nodes are. */
export abstract class LayoutNode extends OnnxNode {
  constructor(opType: string, name: string, inputs: string[], outputs: string[], opset: number) {
    super({ opType, name, input: inputs, output: outputs }, 0, opset);
  }

  abstract run(args: Inputs, context: RunContext): Tensor[];

  /**
   * The node's fast path resolved for inputs of `args`' dims, dtypes and backend and these
   * constants (weights, biases): a function of the inputs that resolves and checks nothing again
   * and whose results carry their shape (no boundary call to ask it), or undefined when the fast
   * path does not take these inputs. `run` takes it; a compiled run (../replay.ts) calls it on
   * every run while the model's input dims and constants stay those it was recorded with.
   */
  prepare(_args: Inputs, _context: RunContext): Prepared | undefined {
    return undefined;
  }

  /** Drops what the node keeps between runs (packed filters): the parameters may have changed. */
  forget(): void {}
}

/** NCHW -> NCHWc of one value, or back (`channels`: the true count, where the padding is dropped). */
export class ReorderNode extends LayoutNode {
  constructor(
    readonly direction: 'ToNchwc' | 'FromNchwc',
    value: string,
    readonly channels: number,
    opset: number,
  ) {
    const [from, to] = direction === 'ToNchwc' ? [value, blockedName(value)] : [blockedName(value), value];
    super(direction, `${direction}(${value})`, [from], [to], opset);
  }

  readonly #lastRun = new LastRun<Prepared>();

  run(args: Inputs): Tensor[] {
    const prepared = this.prepare(args);
    if (prepared !== undefined) return prepared(args);
    const x = args[0]!;
    return [this.direction === 'ToNchwc' ? toNchwc(x) : fromNchwc(x, this.channels)];
  }

  override prepare(args: Inputs): Prepared | undefined {
    const x = args[0];
    const toBlocked = this.direction === 'ToNchwc';
    if (x === undefined || x.backend !== backend() || x.dtype !== 'float32' || x.rank !== (toBlocked ? 4 : 5)) return undefined;
    return this.#lastRun.get(x.shape, [], () => {
      const reorder = unaryNchwcFor(toBlocked ? (impl, h) => impl.toNchwc(h) : (impl, h) => impl.fromNchwc(h, this.channels));
      return (a) => [reorder(a[0]!)];
    });
  }
}

/**
 * An original node run with some inputs (and maybe its output) blocked. `blockedInputs` maps an
 * input's index to its channel count; the output is blocked when `outChannels` is given.
 */
abstract class BlockedNode extends LayoutNode {
  constructor(
    readonly original: OnnxNode,
    readonly blockedInputs: Map<number, number>,
    readonly outChannels: number | undefined,
  ) {
    const inputs = original.inputs.map((name, i) => (blockedInputs.has(i) ? blockedName(name) : name));
    const outputs = outChannels === undefined ? [original.outputs[0]] : [blockedName(original.outputs[0])];
    super(`${original.opType} (NCHWc)`, original.name, inputs, outputs, original.opset);
  }

  /** The blocked computation (see LayoutNode.prepare); undefined to run the original node on plain tensors instead. */
  abstract override prepare(args: Inputs, context: RunContext): Prepared | undefined;

  run(args: Inputs, context: RunContext): Tensor[] {
    const prepared = this.prepare(args, context);
    if (prepared !== undefined) return prepared(args);
    // Intermediates are the enclosing tidy's (OnnxModel.run runs every node inside one).
    const plain = args.map((t, i) => (t !== undefined && this.blockedInputs.has(i) ? fromNchwc(t, this.blockedInputs.get(i)!) : t));
    const original = this.original;
    const results = original instanceof FusedNode ? original.run(plain, context) : OPS[original.opType](plain, original, context);
    return [this.outChannels === undefined ? results[0] : toNchwc(results[0])];
  }
}

/** Packed filters of one weight, computed at the first run and kept until `forget`. */
class PackedFilters {
  #source: Tensor | undefined;
  #packed: Tensor | undefined;

  get(w: Tensor): Tensor {
    if (this.#packed === undefined || this.#source !== w || w.isDisposed) {
      this.forget();
      this.#packed = keep(noGrad(() => tidy(() => packNchwcFilters(w))));
      this.#source = w;
    }
    return this.#packed;
  }

  forget(): void {
    this.#packed?.dispose();
    this.#packed = undefined;
    this.#source = undefined;
  }
}

/**
 * What a node worked out from its input dims and tensors at the last run (a convolution's
 * geometry, a pooling's window, checks), reused while the next run brings the same dims and the
 * same tensor objects (the weights and biases; x itself is new each run, its dims are compared):
 * at batch 1 resolving it again for every node of every run was some 10-20 µs of JavaScript per
 * convolution (docs/onnx-speed-log.md). Tensors are compared by identity: a tensor's shape and
 * dtype never change, and a new weight (loadStateDict, a fold made again) is a new object.
 */
class LastRun<T> {
  #dims: readonly number[] = [];
  #tensors: Inputs = [];
  #value: { of: T } | undefined;

  /** `release` frees what a value holds (zero biases) when a new one replaces it or on `clear`. */
  constructor(readonly release?: (value: T) => void) {}

  get(dims: readonly number[], tensors: Inputs, work: () => T): T {
    const same = this.#value !== undefined && sameShape(dims, this.#dims) && tensors.length === this.#tensors.length && tensors.every((t, i) => t === this.#tensors[i]);
    if (!same) {
      this.clear();
      this.#value = { of: work() };
      this.#dims = [...dims];
      this.#tensors = [...tensors];
    }
    return this.#value!.of;
  }

  /** Forgets the value (its packed filters were freed). */
  clear(): void {
    if (this.#value !== undefined) this.release?.(this.#value.of);
    this.#value = undefined;
    this.#tensors = [];
  }
}

/** The plain dims [N, C, H, W] of a blocked x with C channels, for the geometry helpers. */
const plainOf = (x: Tensor, channels: number) => ({ rank: 4, shape: [x.shape[0], channels, x.shape[2], x.shape[3]] });

/** The blocked shape of conv2d's output: [N, ceil(O/16), OH, OW, 16]. */
function blockedOutputShape(x: { shape: number[] }, w: Tensor, geometry: Conv2dOptions): number[] {
  const [n, o, oh, ow] = conv2dOutputShape(x, w, geometry);
  return [n, Math.ceil(o / NCHWC_BLOCK), oh, ow, NCHWC_BLOCK];
}

const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * A Conv, or a fused Conv(+BatchNormalization)(+Add)(+activation), blocked in and out: x (and the
 * residual addend, input 3 of a fused node) blocked; the filters (BatchNormalization folded in by
 * the fused node) packed once. With `plainInput` (fewer than 16 input channels: a stem), x is
 * read plain and only the output is blocked.
 */
export class BlockedConvNode extends BlockedNode {
  readonly #packed = new PackedFilters();
  readonly #lastRun = new LastRun<{ prepared: Prepared; outShape: number[] }>();

  constructor(original: OnnxNode, inChannels: number, outChannels: number, readonly plainInput = false) {
    const residual = original instanceof ConvFusedNode && original.hasResidual;
    super(original, new Map(plainInput ? [] : residual ? [[0, inChannels], [3, outChannels]] : [[0, inChannels]]), outChannels);
  }

  override prepare(args: Inputs): Prepared | undefined {
    const [x, w, bias, addend, ...statistics] = args;
    const rank = this.plainInput ? 4 : 5;
    if (x === undefined || w === undefined || x.backend !== backend() || x.rank !== rank || x.dtype !== 'float32' || (this.plainInput && x.shape[1] > NCHWC_BLOCK)) return undefined;
    const fused = this.original instanceof ConvFusedNode ? this.original : undefined;
    const filters = fused !== undefined ? fused.filters(w, bias, statistics) : w.rank === 4 && w.dtype === 'float32' && (bias === undefined || bias.dtype === 'float32') ? { w, bias } : undefined;
    if (filters === undefined) return undefined;
    const residual = fused?.hasResidual === true;
    const { prepared, outShape } = this.#lastRun.get(x.shape, [filters.w, filters.bias], () => {
      const plainX = this.plainInput ? { rank: 4, shape: [...x.shape] } : plainOf(x, this.blockedInputs.get(0)!);
      const geometry = conv2dGeometry(plainX, filters.w, fused?.conv ?? this.original);
      const conv = conv2dNchwcFor(x.shape, this.#packed.get(filters.w), { ...geometry, bias: filters.bias ?? null, activation: fused?.activation ?? null, alpha: fused?.alpha ?? 0 });
      const prepared: Prepared = residual ? (a) => [conv(a[0]!, a[3])] : (a) => [conv(a[0]!, undefined)];
      return { prepared, outShape: blockedOutputShape(plainX, filters.w, geometry) };
    });
    if (residual && (addend === undefined || addend.backend !== x.backend || addend.dtype !== 'float32' || !sameShape(addend.shape, outShape))) return undefined;
    return prepared;
  }

  override forget(): void {
    this.#lastRun.clear();
    this.#packed.forget();
  }
}

/** A ConvConcat blocked in and out: each set's blocks written side by side (every set has whole blocks), conv2dNchwcConcat. */
export class BlockedConcatNode extends BlockedNode {
  readonly #packed: PackedFilters[];
  readonly #lastRun = new LastRun<(Prepared & { dispose(): void }) | undefined>((p) => p?.dispose());

  constructor(
    override readonly original: ConvConcatNode,
    inChannels: number,
    outChannels: number,
  ) {
    super(original, new Map([[0, inChannels]]), outChannels);
    this.#packed = original.sets.map(() => new PackedFilters());
  }

  override prepare(args: Inputs): Prepared | undefined {
    const x = args[0];
    if (x === undefined || x.backend !== backend() || x.rank !== 5 || x.dtype !== 'float32') return undefined;
    return this.#lastRun.get(x.shape, args.slice(1), () => {
      const sets = filterSets(plainOf(x, this.blockedInputs.get(0)!), args, this.original.sets);
      if (sets === undefined) return undefined;
      const conv = conv2dNchwcConcatFor(x.shape, sets.map(({ weight, ...options }, i) => ({ ...options, packed: this.#packed[i].get(weight) })));
      return Object.assign((a: Inputs) => [conv(a[0]!)], { dispose: conv.dispose });
    });
  }

  override forget(): void {
    this.#lastRun.clear();
    for (const p of this.#packed) p.forget();
  }
}

/**
 * Relu, Add of two blocked values of one shape, or inference's Dropout (the identity, its mask
 * not made: the plan takes the Dropout only where nothing reads the mask): the layout does not
 * matter.
 */
export class BlockedElementwiseNode extends BlockedNode {
  override prepare(args: Inputs, context: RunContext): Prepared | undefined {
    const [a, b] = args;
    if (a === undefined || (b !== undefined && !sameShape(a.shape, b.shape))) return undefined;
    const node = this.original;
    // Dropout is the identity unless an opset-12 training_mode input may switch it on.
    if (node.opType === 'Dropout' && !context.training && !(node.opset >= 12 && args[2] !== undefined)) return (inputs) => [inputs[0]!];
    const op = OPS[node.opType];
    return (inputs) => tidy(() => op(inputs, node, context).slice(0, 1));
  }
}

/** MaxPool (2-D, no Indices output) of a blocked value, blocked out: no reorder around the pooling. */
export class BlockedMaxPoolNode extends BlockedNode {
  readonly #lastRun = new LastRun<Prepared | undefined>();

  override prepare(args: Inputs): Prepared | undefined {
    const x = args[0];
    if (x === undefined || x.backend !== backend() || x.rank !== 5 || x.dtype !== 'float32') return undefined;
    return this.#lastRun.get(x.shape, [], () => {
      const window = poolWindow(plainOf(x, this.blockedInputs.get(0)!), this.original);
      if (window.rank !== 2) return undefined;
      const pool = unaryNchwcFor((impl, h) => impl.maxPool2dNchwc(h, { kernel: window.kernel, stride: window.stride, padding: window.padding, dilation: window.dilation }));
      return (a) => [pool(a[0]!)];
    });
  }
}

/**
 * AveragePool (2-D, no dilation) or GlobalAveragePool (the window of the whole plane) of a
 * blocked value, blocked out: the network's last activation is not reordered to NCHW to be
 * pooled; the pooled result (1x1 for the global form) is what a reorder reads, if any.
 */
export class BlockedAvgPoolNode extends BlockedNode {
  readonly #lastRun = new LastRun<Prepared | undefined>();

  override prepare(args: Inputs): Prepared | undefined {
    const x = args[0];
    if (x === undefined || x.backend !== backend() || x.rank !== 5 || x.dtype !== 'float32') return undefined;
    return this.#lastRun.get(x.shape, [], () => {
      const [h, w] = [x.shape[2], x.shape[3]];
      const global = this.original.opType === 'GlobalAveragePool';
      const window = global ? undefined : poolWindow(plainOf(x, this.blockedInputs.get(0)!), this.original);
      if (window !== undefined && (window.rank !== 2 || window.dilation[0] !== 1 || window.dilation[1] !== 1)) return undefined;
      const options = window === undefined
        ? { kernel: [h, w] as [number, number], stride: [1, 1] as [number, number], padding: [0, 0, 0, 0] as [number, number, number, number], countIncludePad: false }
        : { kernel: window.kernel, stride: window.stride, padding: window.padding, countIncludePad: this.original.int('count_include_pad', 0) === 1 };
      const pool = unaryNchwcFor((impl, handle) => impl.avgPool2dNchwc(handle, options));
      return (a) => [pool(a[0]!)];
    });
  }
}
