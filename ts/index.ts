/**
 * Kiln: deep learning for TypeScript with Rust kernels.
 *
 *   import * as kiln from 'kiln';
 *   const y = kiln.tidy(() => kiln.tensor([[1, 2], [3, 4]]).matmul(kiln.eye(2)).relu());
 */

import './backends/node.js'; // registers the native (default) and wasm backends

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
export * as train from './train/index.js';
export { fit, evaluate, predict } from './train/index.js';
export * as nn from './nn/index.js';
export * as io from './io/index.js';
export { saveModel, loadModel, saveCheckpoint, loadCheckpoint } from './io/index.js';
export * as data from './data/index.js';
