/**
 * The Tensor: a handle to data owned by the active backend, plus lazily fetched shape and dtype.
 * Every op is available as a function (`kiln.add(a, b)`) and as a method (`a.add(b)`); the
 * methods below only forward to the functions in ops/.
 */

import type { DType, LoadedBackend } from './backends/backend.js';

/** Where a tensor's data lives. */
export type Device = 'cpu' | 'gpu';
import { backendNamed, retrack, track, untrack } from './engine.js';
import * as elementwise from './ops/elementwise.js';
import * as reduction from './ops/reduce.js';
import * as linalg from './ops/matmul.js';
import * as shapeOps from './ops/shape.js';
import * as autograd from './autograd.js';
import type { NestedArray } from './ops/creation.js';

export type TypedArray = Float32Array | Int32Array | Uint8Array | Int8Array;
export type TensorLike = Tensor | number;

export class Tensor {
  #handle: number;
  #shape: number[] | undefined;
  #dtype: DType | undefined;
  #backend: LoadedBackend;
  #device: Device | undefined;
  /** Set by `keep`: no tidy scope will dispose this tensor. */
  kept = false;

  /** Internal: wraps a backend handle. Users create tensors with `kiln.tensor` and the ops. */
  constructor(handle: number, backend: LoadedBackend) {
    this.#handle = handle;
    this.#backend = backend;
    track(this, backend);
  }

  /** The backend that owns this tensor's data. */
  get backend(): LoadedBackend {
    return this.#backend;
  }

  /**
   * Where the data lives: 'gpu' or 'cpu'. Ops run where their inputs live (a GPU tensor's ops
   * run on the GPU whichever backend is active); the active backend decides where new tensors
   * are made.
   */
  get device(): Device {
    return (this.#device ??= (this.#backend.impl.deviceOf?.(this.handle) ?? 'cpu') as Device);
  }

  /**
   * This tensor on `device` ('cpu' or 'gpu'): the tensor itself when it is already there, else a
   * copy on the 'gpu' or 'native' backend. Gradients flow back across the move (native <-> gpu).
   * From the WASM backend, the values are copied (not differentiable).
   */
  to(device: Device): Tensor {
    if (device !== 'cpu' && device !== 'gpu') throw new Error(`to: unknown device '${String(device)}' (expected 'cpu' or 'gpu')`);
    if (this.device === device) return this;
    const impl = this.#backend.impl;
    if (impl.toDevice !== undefined) {
      const target = device === 'gpu' ? backendNamed('gpu') : this.#backend.name === 'gpu' ? backendNamed('native') : this.#backend;
      return wrap(impl.toDevice(this.handle, device), target);
    }
    const target = backendNamed('gpu');
    // Another addon (WASM): through the host.
    return wrap(copyInto(target, this), target);
  }

  /**
   * Internal (Module.to, Optimizer.to): moves the data to `device` keeping this Tensor object, so
   * whatever refers to it (a module, an optimizer's state) sees the move. A parameter stays a leaf
   * with the same requiresGrad; its accumulated gradient is dropped.
   */
  moveTo(device: Device): void {
    if (this.device === device) return;
    const requires = this.requiresGrad;
    const moved = this.to(device);
    const leaf = moved.backend.impl.detach(moved.handle);
    moved.dispose();
    if (requires) moved.backend.impl.setRequiresGrad(leaf, true);
    this.#backend.impl.dispose(this.#handle);
    retrack(this, this.#backend, moved.backend, leaf);
    this.#handle = leaf;
    this.#backend = moved.backend;
    this.#device = device;
  }

  /** Duck-type tag, so containers can be searched for tensors cheaply. */
  get isKilnTensor(): true {
    return true;
  }

  /** The backend handle; throws if the tensor was disposed. */
  get handle(): number {
    if (this.#handle < 0) {
      const what = this.#shape ? ` (${this.#dtype} [${this.#shape.join(', ')}])` : '';
      throw new Error(`Tensor is disposed${what}: it was freed by dispose() or by the tidy() that created it`);
    }
    return this.#handle;
  }

  /** Internal: the handle without the disposed check. */
  get handleUnchecked(): number {
    return this.#handle;
  }

  /** Whether `dispose` has freed this tensor. */
  get isDisposed(): boolean {
    return this.#handle < 0;
  }

  /** Dimensions, outermost first. Do not mutate the returned array. */
  get shape(): readonly number[] {
    return (this.#shape ??= this.backend.impl.shape(this.handle));
  }

  /** The element type: 'float32', 'int32', 'int8' or 'bool'. */
  get dtype(): DType {
    return (this.#dtype ??= this.backend.impl.dtypeOf(this.handle) as DType);
  }

  /** The number of axes (0 for a scalar). */
  get rank(): number {
    return this.shape.length;
  }

  /** Number of elements. */
  get size(): number {
    let n = 1;
    for (const d of this.shape) n *= d;
    return n;
  }

  /** Frees the tensor now. Calling it twice is harmless; using the tensor afterwards throws. */
  dispose(): void {
    if (this.#handle < 0) return;
    const handle = this.#handle;
    // Marked disposed before the backend call, so a backend that throws (a faulted WASM instance)
    // never leaves a tensor that tidy or the GC would try to free again.
    untrack(this, this.backend);
    this.#handle = -1;
    this.backend.impl.dispose(handle);
  }

  /** The elements in row-major order, as a new typed array (Float32Array, Int32Array, Int8Array, or Uint8Array for bool). */
  dataSync(): TypedArray {
    const impl = this.backend.impl;
    switch (this.dtype) {
      case 'float32':
        return impl.readF32(this.handle);
      case 'int32':
        return impl.readI32(this.handle);
      case 'int8':
        return impl.readI8(this.handle);
      default:
        return impl.readBool(this.handle);
    }
  }

  /**
   * The elements, asynchronously. On the GPU backend the readback waits on a worker thread, so
   * the JS thread stays free while the device finishes; elsewhere it is dataSync().
   */
  async data(): Promise<TypedArray> {
    const impl = this.#backend.impl;
    if (impl.readAsync !== undefined && this.device === 'gpu') {
      return impl.readAsync(this.handle);
    }
    return this.dataSync();
  }

  /** The elements as nested arrays matching the shape (a number for a scalar). */
  arraySync(): NestedArray {
    return nest(Array.from(this.dataSync()), this.shape);
  }

  /** The elements as nested arrays, asynchronously. */
  async array(): Promise<NestedArray> {
    return this.arraySync();
  }

  /** The dtype, shape and values, e.g. 'Tensor(float32 [2]) [1,2]' ('Tensor(disposed)' once freed). */
  toString(): string {
    if (this.isDisposed) return 'Tensor(disposed)';
    return `Tensor(${this.dtype} [${this.shape.join(', ')}]) ${JSON.stringify(this.arraySync())}`;
  }

  // ---- autograd ----
  /** Whether this tensor requires gradients. */
  get requiresGrad(): boolean { return autograd.requiresGrad(this); }
  /** Makes this tensor a leaf that accumulates gradients (float32), in place. Returns this. */
  setRequiresGrad(requires = true): this { return autograd.setRequiresGrad(this, requires); }
  /** Back-propagates from this tensor (one element, or pass its gradient). */
  backward(grad?: Tensor): void { autograd.backward(this, grad); }
  /** The accumulated gradient, as a new tensor each access (tidy frees it); null if none. */
  get grad(): Tensor | null { return autograd.gradOf(this); }
  /** Clears the accumulated gradient. */
  zeroGrad(): void { autograd.zeroGrad(this); }
  /** The same data without gradient tracking. */
  detach(): Tensor { return autograd.detach(this); }

  // ---- elementwise ----
  /** Elementwise -x (the same shape). */
  neg(): Tensor { return elementwise.neg(this); }
  /** Elementwise |x|. */
  abs(): Tensor { return elementwise.abs(this); }
  /** Elementwise e^x. */
  exp(): Tensor { return elementwise.exp(this); }
  /** Elementwise natural logarithm (-Infinity at 0, NaN below). */
  log(): Tensor { return elementwise.log(this); }
  /** Elementwise square root. */
  sqrt(): Tensor { return elementwise.sqrt(this); }
  /** Elementwise 1 / sqrt(x). */
  rsqrt(): Tensor { return elementwise.rsqrt(this); }
  /** Elementwise x². */
  square(): Tensor { return elementwise.square(this); }
  /** Elementwise sine (radians). */
  sin(): Tensor { return elementwise.sin(this); }
  /** Elementwise cosine (radians). */
  cos(): Tensor { return elementwise.cos(this); }
  /** Elementwise hyperbolic tangent. */
  tanh(): Tensor { return elementwise.tanh(this); }
  /** Elementwise logistic function 1 / (1 + e^-x). */
  sigmoid(): Tensor { return elementwise.sigmoid(this); }
  /** Elementwise max(x, 0). */
  relu(): Tensor { return elementwise.relu(this); }
  /** Elementwise x for x > 0, else alpha * x (alpha default 0.01). */
  leakyRelu(alpha?: number): Tensor { return elementwise.leakyRelu(this, alpha); }
  /** Elementwise x for x > 0, else alpha * (e^x - 1) (alpha default 1). */
  elu(alpha?: number): Tensor { return elementwise.elu(this, alpha); }
  /** Elementwise GELU, x * Φ(x), in the exact erf form (PyTorch's default). */
  gelu(): Tensor { return elementwise.gelu(this); }
  /** Elementwise log(1 + e^x), computed without overflow. */
  softplus(): Tensor { return elementwise.softplus(this); }
  /** this + b, broadcasting both shapes (NumPy rules); b may be a number. */
  add(b: TensorLike): Tensor { return elementwise.add(this, b); }
  /** this - b, broadcasting. */
  sub(b: TensorLike): Tensor { return elementwise.sub(this, b); }
  /** this * b elementwise, broadcasting. */
  mul(b: TensorLike): Tensor { return elementwise.mul(this, b); }
  /** this / b elementwise, broadcasting. */
  div(b: TensorLike): Tensor { return elementwise.div(this, b); }
  /** this ** b elementwise, broadcasting. */
  pow(b: TensorLike): Tensor { return elementwise.pow(this, b); }
  /** The larger of this and b elementwise, broadcasting. */
  maximum(b: TensorLike): Tensor { return elementwise.maximum(this, b); }
  /** The smaller of this and b elementwise, broadcasting. */
  minimum(b: TensorLike): Tensor { return elementwise.minimum(this, b); }
  /** this == b elementwise, broadcasting: a bool tensor. */
  equal(b: TensorLike): Tensor { return elementwise.equal(this, b); }
  /** this != b elementwise, broadcasting: a bool tensor. */
  notEqual(b: TensorLike): Tensor { return elementwise.notEqual(this, b); }
  /** this < b elementwise, broadcasting: a bool tensor. */
  less(b: TensorLike): Tensor { return elementwise.less(this, b); }
  /** this <= b elementwise, broadcasting: a bool tensor. */
  lessEqual(b: TensorLike): Tensor { return elementwise.lessEqual(this, b); }
  /** this > b elementwise, broadcasting: a bool tensor. */
  greater(b: TensorLike): Tensor { return elementwise.greater(this, b); }
  /** this >= b elementwise, broadcasting: a bool tensor. */
  greaterEqual(b: TensorLike): Tensor { return elementwise.greaterEqual(this, b); }
  /** `this ? a : b` elementwise, with this tensor as the bool condition. */
  where(a: TensorLike, b: TensorLike): Tensor { return elementwise.where(this, a, b); }

  // ---- reductions ----
  /** Sum over `axis` (one, several, or all when omitted); `keepDims` keeps the reduced axes as size 1. */
  sum(axis?: number | number[], keepDims?: boolean): Tensor { return reduction.sum(this, axis, keepDims); }
  /** Mean over `axis` (all when omitted); `keepDims` keeps the reduced axes as size 1. */
  mean(axis?: number | number[], keepDims?: boolean): Tensor { return reduction.mean(this, axis, keepDims); }
  /** Maximum over `axis` (all when omitted); NaN propagates. */
  max(axis?: number | number[], keepDims?: boolean): Tensor { return reduction.max(this, axis, keepDims); }
  /** Minimum over `axis` (all when omitted); NaN propagates. */
  min(axis?: number | number[], keepDims?: boolean): Tensor { return reduction.min(this, axis, keepDims); }
  /** int32 index of the maximum along `axis` (of the flattened tensor when omitted). */
  argmax(axis?: number): Tensor { return reduction.argmax(this, axis); }
  /** int32 index of the minimum along `axis` (of the flattened tensor when omitted). */
  argmin(axis?: number): Tensor { return reduction.argmin(this, axis); }
  /** Variance over `axis` (all when omitted), divided by N - `correction` (default 0: the population variance). */
  variance(axis?: number | number[], keepDims?: boolean, correction?: number): Tensor {
    return reduction.variance(this, axis, keepDims, correction);
  }
  /** log(sum(exp(x))) over `axis`, computed stably (the row maximum is subtracted first). */
  logSumExp(axis?: number | number[], keepDims?: boolean): Tensor { return reduction.logSumExp(this, axis, keepDims); }
  /** Softmax along `axis` (default the last): [..., n] -> [..., n], rows summing to 1. */
  softmax(axis?: number): Tensor { return reduction.softmax(this, axis); }
  /** log(softmax(x)) along `axis` (default the last), computed stably. */
  logSoftmax(axis?: number): Tensor { return reduction.logSoftmax(this, axis); }

  // ---- linear algebra ----
  /** Matrix product: [..., m, k] x [..., k, n] -> [..., m, n] (batch axes broadcast); the flags transpose the last two axes of either side first. */
  matmul(b: Tensor, transposeA?: boolean, transposeB?: boolean): Tensor { return linalg.matmul(this, b, transposeA, transposeB); }

  // ---- shape ----
  /** The same elements in `shape` (one entry may be -1, inferred); shares the buffer when it can. */
  reshape(shape: number[]): Tensor { return shapeOps.reshape(this, shape); }
  /** The elements as one axis: [d0, ..., dk] -> [d0 * ... * dk]. */
  flatten(): Tensor { return shapeOps.reshape(this, [-1]); }
  /** Permutes the axes by `perm` (default: reversed, so a matrix is transposed). */
  transpose(perm?: number[]): Tensor { return shapeOps.transpose(this, perm); }
  /** Permutes the axes: output axis i is input axis perm[i]. */
  permute(perm: number[]): Tensor { return shapeOps.permute(this, perm); }
  /** The block starting at `begin` with `size` elements per axis (-1 or omitted: to the end). */
  slice(begin: number[], size?: number[]): Tensor { return shapeOps.slice(this, begin, size); }
  /** Broadcasts size-1 axes to `shape` without copying (a view). */
  expand(shape: number[]): Tensor { return shapeOps.expand(this, shape); }
  /** The same as `expand`: broadcasts size-1 axes to `shape` without copying. */
  broadcastTo(shape: number[]): Tensor { return shapeOps.expand(this, shape); }
  /** A row-major copy of a view (itself if it already is one). */
  contiguous(): Tensor { return shapeOps.contiguous(this); }
  /** Removes size-1 axes (`axis`, or all of them when omitted). */
  squeeze(axis?: number | number[]): Tensor { return shapeOps.squeeze(this, axis); }
  /** Inserts a size-1 axis at `axis`. */
  unsqueeze(axis: number): Tensor { return shapeOps.unsqueeze(this, axis); }
  /** Inserts a size-1 axis at `axis` (default 0), as tf.expandDims. */
  expandDims(axis = 0): Tensor { return shapeOps.unsqueeze(this, axis); }
  /** Converts to `dtype` ('float32', 'int32', 'int8', 'bool'); float to int truncates toward zero. */
  cast(dtype: DType): Tensor { return shapeOps.cast(this, dtype); }
  /** Splits along `axis` (default 0) into `count` equal parts or parts of the given sizes. */
  split(sizesOrCount: number | number[], axis?: number): Tensor[] { return shapeOps.split(this, sizesOrCount, axis); }
  /** Rows picked by the int32 `indices` along `axis` (default 0): [n, ...] with indices [m] -> [m, ...]. */
  gather(indices: Tensor, axis?: number): Tensor { return shapeOps.gather(this, indices, axis); }
  /** PyTorch's spelling of `gather`: rows picked by `indices` along `axis`. */
  indexSelect(axis: number, indices: Tensor): Tensor { return shapeOps.gather(this, indices, axis); }
  /** A copy with `updates` added at `indices` along `axis` (default 0); repeated indices accumulate. */
  scatterAdd(indices: Tensor, updates: Tensor, axis?: number): Tensor { return shapeOps.scatterAdd(this, indices, updates, axis); }
  /** int32 class ids [n] -> [n, depth], `onValue` (1) at each id and `offValue` (0) elsewhere. */
  oneHot(depth: number, onValue?: number, offValue?: number): Tensor { return shapeOps.oneHot(this, depth, onValue, offValue); }
  /** Pads each axis by [before, after] elements of `value` (default 0). */
  pad(paddings: Array<[number, number]>, value?: number): Tensor { return shapeOps.pad(this, paddings, value); }
  /** A new tensor with the same elements (a fresh handle; the buffer is shared, which is safe since tensors are immutable). */
  clone(): Tensor { return shapeOps.reshape(this, [...this.shape]); }
}

/** A handle on `target` holding `t`'s values (copied through the host). */
function copyInto(target: LoadedBackend, t: Tensor): number {
  const data = t.dataSync();
  const shape = [...t.shape];
  switch (t.dtype) {
    case 'float32':
      return target.impl.fromF32(data as Float32Array, shape);
    case 'int32':
      return target.impl.fromI32(data as Int32Array, shape);
    case 'bool':
      return target.impl.fromBool(data as Uint8Array, shape);
    default:
      throw new Error(`to: ${t.dtype} tensors cannot move to the '${target.name}' backend`);
  }
}

/** Internal: wraps a fresh handle from `backend`. */
export function wrap(handle: number, backend: LoadedBackend): Tensor {
  return new Tensor(handle, backend);
}

function nest(flat: number[], shape: readonly number[]): NestedArray {
  if (shape.length === 0) return flat[0];
  const build = (offset: number, dim: number): NestedArray => {
    const n = shape[dim];
    if (dim === shape.length - 1) return flat.slice(offset, offset + n);
    const stride = shape.slice(dim + 1).reduce((a, b) => a * b, 1);
    const out: NestedArray[] = [];
    for (let i = 0; i < n; i++) out.push(build(offset + i * stride, dim + 1));
    return out;
  };
  return build(0, 0);
}
