/**
 * The flat contract every backend implements (native addon, WASM module; the GPU backend is the
 * native addon). Tensors cross it as integer handles; data crosses as typed arrays. Most entries
 * are declared once in Rust (crates/kiln-boundary, `for_each_entry!`), and
 * tests/boundary/contract.test.ts fails when a method here disagrees with that table in name,
 * arity, argument kind or result; the rest mirror bindings/node/src/lib.rs and
 * bindings/wasm/src/ops.rs. See docs/architecture.md, "The boundary".
 */

export type Handle = number;
/** int8 holds quantized weights (ops/quant.ts); it has no arithmetic of its own. */
export type DType = 'float32' | 'int32' | 'bool' | 'int8';

export interface MemoryInfo {
  /** Live tensor handles. */
  tensors: number;
  /** Distinct live buffers (views share one). */
  buffers: number;
  /** Bytes held by live buffers. */
  bytes: number;
}

// ---- argument groups: each crosses as one object (crates/kiln-boundary/src/kinds/groups.rs);
// tests/boundary/contract.test.ts checks these interfaces field by field against the Rust table.

/** A 2-D convolution's geometry; padding is (top, bottom, left, right). */
export interface ConvGeometry {
  stride: [number, number];
  padding: [number, number, number, number];
  dilation: [number, number];
  groups: number;
}

/** A max-pooling window; padding is (top, bottom, left, right). */
export interface MaxPoolWindow {
  kernel: [number, number];
  stride: [number, number];
  padding: [number, number, number, number];
  dilation: [number, number];
}

/** An average-pooling window; countIncludePad counts the padding in each average. */
export interface AvgPoolWindow {
  kernel: [number, number];
  stride: [number, number];
  padding: [number, number, number, number];
  countIncludePad: boolean;
}

/** Applied to every gradient before the optimizer's rule: scale, clip to ±clipValue (Infinity: off), + weightDecay·param. */
export interface GradTransform {
  scale: number;
  clipValue: number;
  weightDecay: number;
}

/** firstStep: the momentum buffer starts as the gradient. */
export interface SgdStepOptions {
  lr: number;
  momentum: number;
  dampening: number;
  nesterov: boolean;
  firstStep: boolean;
}

/** decoupledDecay > 0 is AdamW; step counts from 1. */
export interface AdamStepOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  decoupledDecay: number;
  step: number;
}

export interface RmspropStepOptions {
  lr: number;
  alpha: number;
  eps: number;
}

export interface AdagradStepOptions {
  lr: number;
  eps: number;
}

/** scale: NaN for 1/sqrt(D); dropout in [0, 1); seed: negative to use the global generator. */
export interface FusedAttentionOptions {
  causal: boolean;
  scale: number;
  dropout: number;
  seed: number;
}

export interface Backend {
  opTable(): Record<string, string[]>;
  simdLevel(): string;
  setSimdLevel(level: string): string;
  numThreads(): number;
  memory(): MemoryInfo;
  /** The Rust entry table as JSON: [{ name, args: [[name, 'Handle' | 'number' | 'boolean']], returns }]. */
  boundaryManifest(): string;

  fromF32(data: Float32Array, shape: number[]): Handle;
  fromI32(data: Int32Array, shape: number[]): Handle;
  fromBool(data: Uint8Array, shape: number[]): Handle;
  shape(h: Handle): number[];
  dtypeOf(h: Handle): string;
  readF32(h: Handle): Float32Array;
  readI32(h: Handle): Int32Array;
  readBool(h: Handle): Uint8Array;
  dispose(h: Handle): boolean;

  unary(op: number, x: Handle, alpha: number): Handle;
  binary(op: number, a: Handle, b: Handle): Handle;
  where(cond: Handle, a: Handle, b: Handle): Handle;
  reduce(op: number, x: Handle, axes: number[], keepDims: boolean, correction: number): Handle;
  softmax(x: Handle, axis: number, log: boolean): Handle;
  matmul(a: Handle, b: Handle, transposeA: boolean, transposeB: boolean): Handle;
  /**
   * activation(x [..., K] · Wᵀ + bias + residual) (crates/kiln-core/src/ops/linear.rs); bias,
   * residual: a handle or -1; activation: a unary op's name ('gelu') or undefined, alpha its parameter.
   */
  linear(x: Handle, w: Handle, bias: number, residual: number, activation: string | undefined, alpha: number): Handle;

  reshape(x: Handle, shape: number[]): Handle;
  permute(x: Handle, perm: number[]): Handle;
  slice(x: Handle, begin: number[], size: number[]): Handle;
  expand(x: Handle, shape: number[]): Handle;
  contiguous(x: Handle): Handle;
  isContiguous(x: Handle): boolean;
  squeeze(x: Handle, axes: number[]): Handle;
  unsqueeze(x: Handle, axis: number): Handle;
  cast(x: Handle, dtype: string): Handle;
  concat(xs: Handle[], axis: number): Handle;
  stack(xs: Handle[], axis: number): Handle;
  split(x: Handle, sizes: number[], count: number, axis: number): Handle[];
  gather(x: Handle, indices: Handle, axis: number): Handle;
  scatterAdd(base: Handle, indices: Handle, updates: Handle, axis: number): Handle;
  oneHot(indices: Handle, depth: number, on: number, off: number): Handle;
  pad(x: Handle, paddings: number[], value: number): Handle;

  /** opName: the op to name in errors (zeros, ones, ...); defaults to full. */
  full(shape: number[], value: number, dtype: string, opName?: string): Handle;
  arange(start: number, stop: number, step: number, dtype: string): Handle;
  eye(rows: number, cols: number): Handle;
  randn(shape: number[], mean: number, std: number, seed?: number): Handle;
  randu(shape: number[], low: number, high: number, seed?: number): Handle;
  setSeed(seed: number): void;

  /** Overwrites target's values with source's in place (same shape, float32). */
  assign(target: Handle, source: Handle): boolean;
  setRequiresGrad(x: Handle, requires: boolean): boolean;
  requiresGrad(x: Handle): boolean;
  /** seed: a handle, or -1 for the implicit 1 of a one-element tensor. */
  backward(x: Handle, seed: number): boolean;
  /** A new handle to the accumulated gradient, or -1. */
  grad(x: Handle): number;
  zeroGrad(x: Handle): boolean;
  detach(x: Handle): Handle;
  setGradEnabled(enabled: boolean): boolean;
  /**
   * d(root)/d(input) per input as new handles (-1 where root does not depend on the input);
   * seed: a handle or -1. Returned, not accumulated: no leaf's grad changes.
   */
  gradients(root: Handle, seed: number, inputs: Handle[]): number[];

  /** Fused cross-entropy from logits; weights: handle or -1; reduction 0 none, 1 mean, 2 sum. */
  crossEntropy(logits: Handle, targets: Handle, weights: number, labelSmoothing: number, reduction: number): Handle;
  /** In-place optimizer updates of a parameter and its state tensors (see crates/kiln-core/src/optim.rs). */
  sgdStep(param: Handle, grad: Handle, buffer: number, options: SgdStepOptions, transform: GradTransform): boolean;
  adamStep(param: Handle, grad: Handle, m: Handle, v: Handle, options: AdamStepOptions, transform: GradTransform): boolean;
  rmspropStep(param: Handle, grad: Handle, squareAvg: Handle, options: RmspropStepOptions, transform: GradTransform): boolean;
  adagradStep(param: Handle, grad: Handle, sum: Handle, options: AdagradStepOptions, transform: GradTransform): boolean;

  /**
   * Why this instance can no longer run (a WASM trap), or null while it works. The engine then
   * loads a fresh instance for new tensors (engine.ts); backends that cannot fault omit it.
   */
  faulted?(): string | null;

  /** Test hook: panics inside Rust (optionally in a worker thread); must surface as an Error. */
  debugPanic(inThreadPool: boolean): boolean;

  // ---- graph neural networks: message passing over an edge list (crates/kiln-core/src/ops/graph.rs) ----
  /** out[dst[e]] += weight[e] · x[src[e]]; weight: a handle or -1 (all ones). */
  spmm(x: Handle, src: Handle, dst: Handle, weight: number, numOut: number): Handle;
  /** op: a code of the segmentReduce family (sum, mean, max). */
  segmentReduce(op: number, values: Handle, ids: Handle, numSegments: number): Handle;
  // Recurrent layers.
  /**
   * One RNN/LSTM/GRU layer and direction over a whole sequence (fused gates, BPTT in Rust).
   * cell: code from opTable().recurrent; c0, bIh, bHh: handles or -1. Returns the packed
   * [batch, steps + states, hidden] (output sequence, final h, and final c for an LSTM).
   */
  recurrent(cell: number, x: Handle, h0: Handle, c0: number, wIh: Handle, wHh: Handle, bIh: number, bHh: number, reverse: boolean): Handle;
  // ---- weight-only quantization (crates/kiln-core/src/ops/quant.rs) ----
  fromI8(data: Int8Array, shape: number[]): Handle;
  readI8(h: Handle): Int8Array;
  /** [q int8 [O, I], scales float32 [O]] */
  quantizeInt8(w: Handle): Handle[];
  /** [packed int8 [O, ceil(I/2)], scales float32 [O, ceil(I/block)]] */
  quantizeInt4(w: Handle, block: number): Handle[];
  dequantizeInt8(q: Handle, scales: Handle): Handle;
  dequantizeInt4(packed: Handle, scales: Handle, inFeatures: number, block: number): Handle;
  /** x·Wᵀ + b on int8 weights; bias: a handle or -1. Inference-only. */
  linearQ8(x: Handle, q: Handle, scales: Handle, bias: number): Handle;
  /** As linearQ8 with the input quantized to int8 per row too (int8 x int8 -> i32). Inference-only. */
  linearW8A8(x: Handle, q: Handle, scales: Handle, bias: number): Handle;
  /** x·Wᵀ + b on packed int4 weights; bias: a handle or -1. Inference-only. */
  linearQ4(x: Handle, packed: Handle, scales: Handle, bias: number, block: number): Handle;
  // ---- convolution (CNN family); bias: a handle or -1; padding per side ----
  /** residual (a handle of the output's shape, or -1) is added, then activation ('relu', 'leakyRelu', 'elu', 'sigmoid', 'tanh'; alpha: leakyRelu's slope, elu's scale) applied, as the output is written. */
  conv2d(x: Handle, w: Handle, bias: number, residual: number, geometry: ConvGeometry, alpha: number, activation: string | undefined): Handle;
  conv2dConcat(x: Handle, weights: Handle[], biases: Handle[], geometries: ConvGeometry[], activations: string[], alphas: number[]): Handle;
  convTranspose2d(x: Handle, w: Handle, bias: number, geometry: ConvGeometry, outputPadding: [number, number]): Handle;
  /** conv2d in the channel-blocked layout NCHWc (x [N, Cb, H, W, 16], packed from packNchwcFilters, residual in the output's layout or -1); inference only. */
  conv2dNchwc(x: Handle, packed: Handle, bias: number, residual: number, geometry: ConvGeometry, alpha: number, activation: string | undefined): Handle;
  /** conv2dConcat in NCHWc: `weights` packed filters, outputs side by side on the block axis; inference only. */
  conv2dNchwcConcat(x: Handle, weights: Handle[], biases: Handle[], geometries: ConvGeometry[], activations: string[], alphas: number[]): Handle;
  /** maxPool2d of a blocked x [N, Cb, H, W, 16] -> [N, Cb, OH, OW, 16]; inference only. */
  maxPool2dNchwc(x: Handle, window: MaxPoolWindow): Handle;
  avgPool2dNchwc(x: Handle, window: AvgPoolWindow): Handle;
  /** NCHW [N, C, H, W] -> NCHWc [N, ceil(C/16), H, W, 16], padded channels zero. */
  toNchwc(x: Handle): Handle;
  /** NCHWc -> NCHW [N, channels, H, W]. */
  fromNchwc(x: Handle, channels: number): Handle;
  /** [O, C, KH, KW] -> [ceil(O/16), ceil(C/16), KH, KW, 16, 16]. */
  packNchwcFilters(w: Handle): Handle;
  // ---- CNN pooling and batch normalization (crates/kiln-core/src/ops/pool.rs, batch_norm.rs) ----
  /** x [N, C, H, W] -> [N, C, outH, outW]; padding is (top, bottom, left, right). */
  maxPool2d(x: Handle, window: MaxPoolWindow): Handle;
  avgPool2d(x: Handle, window: AvgPoolWindow): Handle;
  /** x [N, C, ...] -> same; weight, bias, runningMean, runningVar: handles or -1. Updates the running statistics in place when training. */
  batchNorm(x: Handle, weight: number, bias: number, runningMean: number, runningVar: number, training: boolean, momentum: number, eps: number): Handle;
  // attention (Transformer family)
  /** Fused scaled dot-product attention (crates/kiln-core/src/ops/attention.rs); mask: a handle or -1. */
  attention(q: Handle, k: Handle, v: Handle, mask: number, options: FusedAttentionOptions): Handle;
  /** Layer normalization over the dims from `axis` on (crates/kiln-core/src/ops/layer_norm.rs); weight and bias: handles or -1. */
  layerNorm(x: Handle, weight: number, bias: number, axis: number, eps: number): Handle;
  /** The most bytes live at once (tensors and kernel scratch) since the last reset; `reset` starts a new measurement. */
  peakBytes(reset: boolean): number;
  /** Counts in-place writes of xs from now on; returns the count of writes to all watched tensors so far (folds kept by the ONNX importer compare it). */
  watchWrites(xs: Handle[]): number;
  // ---- devices (the native addon, bindings/node/src/gpu.rs; in browsers the GPU module, bindings/wasm/src/gpu.rs) ----
  /** Opens the GPU if needed (in a browser: describes the GPU opened by setBackend); JSON: adapter, driver, limits, readbacks. Throws with an install hint without one. */
  gpuInfo?(): string;
  /** A new handle to the tensor on 'cpu' or 'gpu' (differentiable). */
  toDevice?(h: Handle, device: string): Handle;
  /** 'cpu' or 'gpu'. */
  deviceOf?(h: Handle): string;
  /** Waits for every kernel submitted to the GPU (in a browser, which cannot block: a Promise). */
  gpuSynchronize?(): boolean | Promise<boolean>;
  /** Reads a tensor without blocking JS (Node: on a worker thread; a browser: WebGPU's mapAsync). */
  readAsync?(h: Handle): Promise<Float32Array | Int32Array | Uint8Array | Int8Array>;
  // ---- quantized convolutions (crates/kiln-core/src/ops/quant/conv.rs); bias: a handle or -1 ----
  /** conv2d on int8 filter rows q [O, C/groups·kh·kw], scales [O]. Inference-only. */
  conv2dQ8(x: Handle, q: Handle, scales: Handle, bias: number, kernel: [number, number], geometry: ConvGeometry): Handle;
  /** As conv2dQ8 with the input quantized to int8 per output position too (int8 x int8 -> i32). Inference-only. */
  conv2dW8A8(x: Handle, q: Handle, scales: Handle, bias: number, kernel: [number, number], geometry: ConvGeometry): Handle;
  /** conv2d on packed int4 filter rows [O, ceil(patch/2)], scales [O, ceil(patch/block)]. Inference-only. */
  conv2dQ4(x: Handle, packed: Handle, scales: Handle, bias: number, kernel: [number, number], geometry: ConvGeometry, block: number): Handle;
}

/** A backend as the engine holds it: the contract plus its name and resolved op codes. */
export interface LoadedBackend {
  name: string;
  impl: Backend;
  /**
   * Whose tensor handles `impl` uses: 'native' for both the native and the GPU backend (one
   * addon; kiln-core runs each op where its inputs live), 'wasm' for WASM. Ops accept tensors from
   * any backend with the same `handles`.
   */
  handles: string;
  /** family -> op name -> code, read once from the backend's own op table. */
  codes: Record<string, Record<string, number>>;
}

export function loadBackend(name: string, impl: Backend, handles = name): LoadedBackend {
  const codes: Record<string, Record<string, number>> = {};
  for (const [family, names] of Object.entries(impl.opTable())) {
    codes[family] = Object.fromEntries(names.map((n, i) => [n, i]));
  }
  return { name, impl, codes, handles };
}
