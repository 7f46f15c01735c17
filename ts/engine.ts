/**
 * The engine: which backend is active, and the tensor lifetime rules. Every tensor made by an op
 * is recorded in the innermost `tidy` scope, which disposes it when the scope ends unless it is
 * returned or kept. A FinalizationRegistry frees tensors the user forgot, as a safety net only:
 * garbage collection is late and unpredictable, `dispose` and `tidy` are not.
 */

import { loadBackend, type Backend, type LoadedBackend, type MemoryInfo } from './backends/backend.js';
import type { Tensor } from './tensor.js';

/** The backends: 'native' (the Rust addon, the default in Node), 'wasm' (the WASM module, the default in browsers) and 'gpu' (wgpu through the addon). */
export type BackendName = 'native' | 'wasm' | 'gpu';

let active: LoadedBackend | null = null;
const loaded = new Map<string, LoadedBackend>();
const collectors = new Map<LoadedBackend, FinalizationRegistry<number>>();

/**
 * Backend factories, registered by the entry point: the Node entry (index.ts, through
 * backends/node.ts) registers 'native' and 'wasm' with 'native' as the default; the browser entry
 * (browser.ts) registers only 'wasm'. The engine itself imports no platform module, so it bundles
 * for browsers. A factory runs once, on first use of its backend (again after a fault), with the
 * options `setBackend` was last given for it.
 */
interface Factory {
  make: (options: BackendOptions) => Backend;
  handles: string;
  /**
   * Applies a thread count to a loaded instance; false when that instance cannot run it (a
   * single-threaded WASM build asked for more than one thread), and a fresh one must be made.
   */
  setThreads?: (impl: Backend, threads: number | 'auto') => boolean;
}
const factories = new Map<string, Factory>();
const requested = new Map<string, BackendOptions>();
let defaultName: BackendName | null = null;

/**
 * Internal: makes a backend available to `setBackend`; `isDefault` makes it the one used first.
 * `handles`: the backend whose tensor handles this one shares (the GPU backend is the native addon).
 * `setThreads`: how the backend takes `setBackend(name, { threads })` once loaded (only 'wasm' has threads to set).
 */
export function registerBackend(
  name: BackendName,
  factory: (options: BackendOptions) => Backend,
  isDefault = false,
  handles: string = name,
  setThreads?: Factory['setThreads'],
): void {
  factories.set(name, { make: factory, handles, setThreads });
  if (isDefault || defaultName === null) defaultName = name;
}

let chooseDefault: (() => BackendName) | null = null;

/**
 * Internal: decides the default backend on first use instead of at registration (the Node entry
 * picks native when its binary loads, else WASM). Overrides `isDefault`.
 */
export function registerDefaultBackend(choose: () => BackendName): void {
  chooseDefault = choose;
}

function load(name: BackendName): LoadedBackend {
  const existing = loaded.get(name);
  // A backend whose instance faulted (a WASM trap) is replaced by a fresh one; the old one keeps
  // answering its own tensors with an Error that explains they were lost.
  if (existing && existing.impl.faulted?.() == null) return existing;
  const factory = factories.get(name);
  if (factory === undefined) {
    const available = [...factories.keys()].join(', ') || 'none: import Kiln through its entry point (index.js or the browser bundle)';
    throw new Error(`setBackend: the '${name}' backend is not available in this build (available: ${available})`);
  }
  const made = factory.make(requested.get(name) ?? {});
  // A platform that cannot make a second instance (the browser build: the page must reload) keeps
  // the faulted one, whose every call explains what happened.
  if (existing && made.faulted?.() != null) return existing;
  const b = loadBackend(name, made, factory.handles);
  loaded.set(name, b);
  const impl = b.impl;
  // A finalizer that throws exits Node with an uncaught exception, so the safety net never does:
  // a handle it cannot free (its WASM instance is gone) is already freed with that instance.
  collectors.set(
    b,
    new FinalizationRegistry((h: number) => {
      try {
        impl.dispose(h);
      } catch {
        // nothing left to free
      }
    }),
  );
  return b;
}

/** Internal: the backend called `name`, loaded on first use (Tensor.to). */
export function backendNamed(name: BackendName): LoadedBackend {
  return load(name);
}

/** The active backend, loading the default (native in Node, wasm in browsers) on first use. */
export function backend(): LoadedBackend {
  // After a fault, new tensors go to a fresh instance of the same backend.
  if (active !== null && active.impl.faulted?.() != null) active = load(active.name as BackendName);
  if (active !== null) return active;
  if (chooseDefault !== null) return (active = load(chooseDefault()));
  if (defaultName === null) {
    throw new Error('kiln: no backend is registered: import Kiln through its entry point (index.js in Node, the browser bundle in browsers)');
  }
  return (active = load(defaultName));
}

/** What `setBackend` takes besides the name. */
export interface BackendOptions {
  /**
   * WASM only: threads for the kernels, the calling thread included: an integer >= 1, or 'auto'
   * (every core: `os.availableParallelism()` in Node; in a page `navigator.hardwareConcurrency`
   * when it is cross-origin isolated, else 1). More than one runs Kiln's threaded WASM build
   * (worker_threads in Node, Web Workers in a page).
   */
  threads?: number | 'auto';
}

/** How a call to setBackend reads in its errors: `setBackend('wasm', { threads: 0 })`. */
export function describeSetBackend(name: unknown, options: unknown): string {
  const threads = (options as BackendOptions | undefined)?.threads;
  const shown = threads === undefined ? '' : `, { threads: ${typeof threads === 'string' ? `'${threads}'` : String(threads)} }`;
  return `setBackend(${typeof name === 'string' ? `'${name}'` : String(name)}${shown})`;
}

/**
 * Checks setBackend's options (shared by the Node and browser entries); returns the thread count
 * asked for, if any.
 */
export function checkBackendOptions(name: BackendName, options: unknown): number | 'auto' | undefined {
  if (options === undefined) return undefined;
  const call = describeSetBackend(name, options);
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new Error(`setBackend: options must be an object such as { threads: 2 }, got ${options === null ? 'null' : Array.isArray(options) ? 'an array' : typeof options}`);
  }
  const unknown = Object.keys(options).filter((k) => k !== 'threads');
  if (unknown.length > 0) throw new Error(`${call}: unknown option(s) ${unknown.map((k) => `'${k}'`).join(', ')} (setBackend takes { threads })`);
  const { threads } = options as BackendOptions;
  if (threads === undefined) return undefined;
  if (name !== 'wasm') {
    throw new Error(`${call}: the threads option is for the 'wasm' backend; the ${name === 'gpu' ? 'GPU runs its own parallelism' : "native backend's CPU threads are set by RAYON_NUM_THREADS"}`);
  }
  if (threads !== 'auto' && !(typeof threads === 'number' && Number.isInteger(threads) && threads >= 1)) {
    throw new Error(`${call}: threads must be an integer >= 1 or 'auto', got ${typeof threads === 'string' ? `'${threads}'` : String(threads)} (${typeof threads})`);
  }
  return threads;
}

/**
 * Internal: forgets the loaded instance of `name`, so that its next use makes a fresh one (the
 * single-threaded WASM build giving way to the threaded one). Refuses while the instance holds
 * tensors: their handles mean nothing in another instance. `call` names the user's call.
 */
export function retireBackend(name: BackendName, call: string, why: string): void {
  const current = loaded.get(name);
  if (current === undefined) return;
  const live = current.impl.faulted?.() == null ? current.impl.memory().tensors : 0;
  if (live > 0) {
    throw new Error(
      `${call}: ${why}, and the loaded one holds ${live} live tensor(s), which cannot move to another instance; ` +
        `call ${call} before creating '${name}' tensors, or dispose them first`,
    );
  }
  loaded.delete(name);
  collectors.delete(current);
  if (active === current) active = null;
}

/**
 * Selects the backend for tensors created from now on: 'native' (default in Node), 'wasm'
 * (default in browsers) or 'gpu' (Node: the addon with kiln-gpu; throws, saying what to install,
 * when the machine has no GPU driver). Returns the name.
 *
 *   kiln.setBackend('wasm', { threads: 4 });   // WASM on 4 threads (Node: worker_threads)
 *
 * `threads` (WASM only, see BackendOptions) may change while the backend is in use: fewer
 * threads, or more (new workers start); a switch from the single-threaded build to the threaded
 * one needs a fresh instance, so it throws while WASM tensors are alive.
 */
export function setBackend(name: BackendName, options?: BackendOptions): BackendName {
  const threads = checkBackendOptions(name, options);
  const factory = factories.get(name);
  if (threads !== undefined && factory !== undefined) {
    const current = loaded.get(name);
    if (current !== undefined && current.impl.faulted?.() == null && !(factory.setThreads?.(current.impl, threads) ?? false)) {
      retireBackend(name, describeSetBackend(name, options), `${threads} threads need the threaded WASM build, not the single-threaded one in use`);
    }
    // Also what a fresh instance after a fault gets.
    requested.set(name, { ...requested.get(name), threads });
  }
  active = load(name);
  return name;
}

/** The active backend's name. */
export function getBackend(): BackendName {
  return backend().name as BackendName;
}

// ---- lifetimes -----------------------------------------------------------------------------

const scopes: Tensor[][] = [];

/**
 * Backends set this bit in handles of tensors with large buffers (>= 4 KiB). Only those are
 * registered with the FinalizationRegistry: registering costs ~200 ns, more than a whole small
 * op, and a forgotten small tensor costs little. tidy/dispose remain the way to free memory.
 */
const LARGE_FLAG = 0x80000000;

/** Called for every new tensor: records it in the current tidy scope and the GC safety net. */
export function track(t: Tensor, b: LoadedBackend): void {
  if (t.handleUnchecked >= LARGE_FLAG) collectors.get(b)!.register(t, t.handleUnchecked, t);
  const scope = scopes[scopes.length - 1];
  if (scope !== undefined) scope.push(t);
}

/** Called when a tensor's data moves to another backend (Tensor.moveTo): the GC safety net follows it. */
export function retrack(t: Tensor, from: LoadedBackend, to: LoadedBackend, newHandle: number): void {
  untrack(t, from);
  if (newHandle >= LARGE_FLAG) collectors.get(to)!.register(t, newHandle, t);
}

/** Called by Tensor.dispose: the GC must not free the handle a second time. */
export function untrack(t: Tensor, b: LoadedBackend): void {
  if (t.handleUnchecked >= LARGE_FLAG) collectors.get(b)!.unregister(t);
}

/**
 * Any structure of tensors a tidy function may return: tensors inside arrays and plain objects
 * (interfaces included) are found; other values pass through untouched.
 */
export type TensorContainer = Tensor | readonly TensorContainer[] | object | void | number | string | boolean | null | undefined;

/** Finds the tensors in a returned structure; `seen` guards against cycles. */
function collect(result: unknown, into: Set<Tensor>, seen = new Set<object>()): void {
  // A typed array (tidy(() => t.dataSync())) holds numbers only: Object.values of a batch-8
  // Transformer's output made 262,144 of them on every inference (perf: 1.6% of its samples).
  if (result === null || typeof result !== 'object' || seen.has(result) || ArrayBuffer.isView(result)) return;
  seen.add(result);
  let isTensor = false;
  try {
    isTensor = (result as Tensor).isKilnTensor === true;
  } catch {
    return; // an object whose property reads throw (e.g. a test assertion proxy) holds no tensors
  }
  if (isTensor) {
    into.add(result as Tensor);
  } else if (Array.isArray(result)) {
    for (const r of result) collect(r, into, seen);
  } else {
    for (const r of Object.values(result)) collect(r, into, seen);
  }
}

/**
 * Runs `fn` and disposes every tensor it created, except those it returns (a tensor, or arrays
 * and objects of tensors) and those passed to `keep`. Returned tensors move to the enclosing scope.
 * Throws what `fn` throws, after cleaning up.
 */
export function tidy<T extends TensorContainer>(fn: () => T): T {
  if (typeof fn !== 'function') throw new Error('tidy: expected a function');
  scopes.push([]);
  let result: T;
  let scope: Tensor[];
  try {
    result = fn();
  } catch (e) {
    scope = scopes.pop()!;
    disposeEach(scope.filter((t) => !t.kept));
    throw e;
  }
  scope = scopes.pop()!;
  if (result instanceof Promise) {
    disposeEach(scope.filter((t) => !t.kept));
    throw new Error('tidy: the function must be synchronous (it returned a Promise)');
  }
  const survivors = new Set<Tensor>();
  collect(result, survivors);
  const parent = scopes[scopes.length - 1];
  const doomed: Tensor[] = [];
  for (const t of scope) {
    if (survivors.has(t) || t.kept) {
      if (parent !== undefined && !t.isDisposed) parent.push(t);
    } else {
      doomed.push(t);
    }
  }
  const failure = disposeEach(doomed);
  if (failure !== undefined) throw failure;
  return result;
}

/**
 * Disposes every tensor even when some cannot be freed (one from a faulted WASM instance must not
 * leak the rest of a tidy scope); returns the first error, if any.
 */
function disposeEach(tensors: Tensor[]): unknown {
  let first: unknown;
  for (const t of tensors) {
    try {
      t.dispose();
    } catch (e) {
      first ??= e;
    }
  }
  return first;
}

/** Marks a tensor so that no enclosing tidy disposes it. Returns it. */
export function keep<T extends Tensor>(t: T): T {
  t.kept = true;
  return t;
}

/** Disposes every tensor in a tensor, array or object of tensors. */
export function dispose(container: TensorContainer): void {
  const all = new Set<Tensor>();
  collect(container, all);
  for (const t of all) t.dispose();
}

/** Live tensors and bytes on the active backend: `numTensors`, `numBuffers`, `numBytes`. */
export function memory(): { numTensors: number; numBuffers: number; numBytes: number } {
  const m: MemoryInfo = backend().impl.memory();
  return { numTensors: m.tensors, numBuffers: m.buffers, numBytes: m.bytes };
}

/** The SIMD instruction set the CPU kernels chose at run time (e.g. 'avx512'). */
export function simdLevel(): string {
  return backend().impl.simdLevel();
}

/** Worker threads the CPU kernels use. */
export function numThreads(): number {
  return backend().impl.numThreads();
}

// attention (Transformer family): working-memory measurement
/**
 * The most bytes that were live at once on the active backend (tensor buffers and the kernels'
 * scratch memory) since the last `resetPeakMemory()`: how to see an op's working memory, which
 * `memory()` after the op cannot.
 */
export function peakMemory(): { numBytes: number } {
  return { numBytes: backend().impl.peakBytes(false) };
}

/** Starts a new peak measurement for `peakMemory()` from the bytes live now. */
export function resetPeakMemory(): void {
  backend().impl.peakBytes(true);
}

/** What `gpuInfo()` returns. */
export interface GpuInfo {
  /** The adapter's name, e.g. 'llvmpipe (LLVM 15.0.6, 256 bits)' for the CPU driver lavapipe. */
  adapter: string;
  /** The graphics API wgpu runs on: 'Vulkan', 'Metal', 'Dx12', or 'BrowserWebGpu' in a page. */
  backend: string;
  /** 'DiscreteGpu', 'IntegratedGpu', 'Cpu' (a software driver), ... */
  deviceType: string;
  driver: string;
  driverInfo: string;
  /** In a browser: the adapter's vendor and architecture as WebGPU reports them (e.g. 'google', 'swiftshader'). */
  vendor?: string;
  architecture?: string;
  /** True for a CPU implementation: timings then say nothing about GPUs. */
  software: boolean;
  limits: {
    maxBufferSize: number;
    maxStorageBufferBindingSize: number;
    maxComputeWorkgroupStorageSize: number;
    maxComputeInvocationsPerWorkgroup: number;
    maxComputeWorkgroupsPerDimension: number;
  };
  /**
   * The device's buffer pool: buffers held by tensors, buffers freed and waiting for reuse, and
   * buffers ever created (flat over a training loop once it has warmed up: freed buffers are reused).
   */
  pool: { liveBuffers: number; liveBytes: number; freeBuffers: number; freeBytes: number; created: number };
  /** Kernels compiled on this device so far (each is compiled once, on first use, then cached). */
  pipelines: number;
  /** Device-to-host copies so far (each `data()`/`dataSync()` of a GPU tensor is one). */
  readbacks: number;
}

/** The GPU Kiln uses (opening it if needed): adapter, limits, buffer pool, readbacks. Throws when there is none, saying what to install. */
export function gpuInfo(): GpuInfo {
  const impl = load('gpu').impl;
  return JSON.parse(impl.gpuInfo!()) as GpuInfo;
}

/**
 * Waits until the GPU has finished every op submitted so far (GPU ops return as soon as they are
 * queued). For timing; reading a result (`await t.data()`) waits by itself. No-op without a GPU.
 * In a browser a page cannot block: there it returns a Promise (`await kiln.synchronize()`).
 */
export function synchronize(): void | Promise<void> {
  const done = loaded.get('gpu')?.impl.gpuSynchronize?.();
  return done instanceof Promise ? done.then(() => undefined) : undefined;
}
