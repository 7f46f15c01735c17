/**
 * The Tensor: a handle to data owned by the active backend, plus lazily fetched shape and dtype.
 * Every op is available as a function (`kiln.add(a, b)`) and as a method (`a.add(b)`). This file
 * holds only what a tensor is (handle, shape, dtype, device, lifetime, readback); the op methods
 * are declared and attached by tensor-methods/*, so that ops/* can import `Tensor` without
 * `Tensor` importing them back (docs/architecture.md, "TypeScript").
 */

import type { DType, LoadedBackend } from './backends/backend.js';

/** Where a tensor's data lives. */
export type Device = 'cpu' | 'gpu';
import { backendNamed, retrack, track, untrack } from './engine.js';

/** Numbers or booleans nested in arrays, one level per axis (`[[1, 2], [3, 4]]`). */
export type NestedArray = number | boolean | NestedArray[];
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

  /**
   * Internal: wraps a backend handle. Users create tensors with `kiln.tensor` and the ops. A
   * caller that knows the result's shape and dtype (a compiled ONNX run, ts/onnx/replay.ts) gives
   * them, saving the two boundary calls that would fetch them.
   */
  constructor(handle: number, backend: LoadedBackend, shape?: number[], dtype?: DType) {
    this.#handle = handle;
    this.#backend = backend;
    this.#shape = shape;
    this.#dtype = dtype;
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

  /** The elements as nested arrays, asynchronously (read with `data()`: on WebGPU in a page, the only read). */
  async array(): Promise<NestedArray> {
    return nest(Array.from(await this.data()), this.shape);
  }

  /**
   * The dtype, shape and values, e.g. 'Tensor(float32 [2]) [1,2]' ('Tensor(disposed)' once freed).
   * Printing never throws for want of a synchronous read: a GPU tensor in a page (WebGPU cannot be
   * waited for there) prints where it lives and how to read it instead of its values.
   */
  toString(): string {
    if (this.isDisposed) return 'Tensor(disposed)';
    const head = `Tensor(${this.dtype} [${this.shape.join(', ')}])`;
    try {
      return `${head} ${JSON.stringify(this.arraySync())}`;
    } catch (e) {
      if (!/synchronous GPU read is not possible/.test((e as Error).message)) throw e;
      return `${head} on ${this.device}: read its values with \`await t.array()\``;
    }
  }

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

/** Internal: wraps a fresh handle from `backend`; `shape` and `dtype` when the caller knows them (never mutated afterwards). */
export function wrap(handle: number, backend: LoadedBackend, shape?: number[], dtype?: DType): Tensor {
  return new Tensor(handle, backend, shape, dtype);
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
