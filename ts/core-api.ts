/**
 * The platform-independent API, shared by the Node entry (index.ts) and the browser entry
 * (browser.ts); each adds what only it can offer (files, MNIST, callbacks that write files; init).
 */

export { Tensor, type TensorLike, type TypedArray } from './tensor.js';
export type { DType } from './backends/backend.js';
export { tidy, keep, dispose, memory, setBackend, getBackend, simdLevel, numThreads, type BackendName, type TensorContainer } from './engine.js';
export { noGrad, backward, setRequiresGrad, detach, assign } from './autograd.js';
export * from './ops/creation.js';
export * from './ops/elementwise.js';
export * from './ops/reduce.js';
export * from './ops/matmul.js';
export * from './ops/shape.js';
export * as losses from './losses.js';
export { crossEntropy, binaryCrossEntropy, mse, huber, klDivergence, gaussianKl } from './losses.js';
export * as optim from './optim/index.js';
export * as nn from './nn/index.js';
// attention (Transformer family)
export { attention, type AttentionOptions } from './ops/attention.js';
export { peakMemory, resetPeakMemory } from './engine.js';
