/**
 * The platform-independent API, shared by the Node entry (index.ts) and the browser entry
 * (browser.ts); each adds what only it can offer (files, MNIST, callbacks that write files; init).
 */

export { Tensor, type TensorLike, type TypedArray } from './tensor.js';
// Attaches the op methods (x.add(b), x.matmul(w), ...) to Tensor: tensor.ts cannot import the ops
// that import it (docs/architecture.md, "TypeScript").
import './tensor-methods/index.js';
export type { DType } from './backends/backend.js';
export { tidy, keep, dispose, memory, setBackend, getBackend, simdLevel, numThreads, type BackendName, type TensorContainer } from './engine.js';
export { noGrad, backward, setRequiresGrad, detach, assign, gradients, grad, grads, valueAndGrad, valueAndGrads } from './autograd.js';
export * from './ops/creation.js';
export * from './ops/elementwise.js';
export * from './ops/reduce.js';
export * from './ops/matmul.js';
export * from './ops/shape.js';
export * as losses from './losses-namespace.js';
export { crossEntropy, binaryCrossEntropy, mse, huber, klDivergence, gaussianKl, distillationLoss } from './losses.js';
export { ntXent } from './contrastive.js';
export * as optim from './optim/index.js';
export * as nn from './nn/index.js';
// graph neural networks: message passing over an edge list
export * from './ops/graph.js';
export { SparseMatrix } from './ops/sparse.js';
export * as interpret from './interpret/index.js';
// Recurrent layers: the fused one-layer op under nn.RNN / nn.LSTM / nn.GRU.
export { recurrent, type RecurrentCell, type RecurrentWeights, type RecurrentResult } from './ops/recurrent.js';
// Weight-only quantization: the kernels, and kiln.quantize(model, { bits }) for whole models.
export * from './ops/quant.js';
export { quantize, quantizationConfig, type QuantizeOptions, type QuantizedActivations } from './nn/quantized.js';
// convolution (CNN family)
export { conv2d, convTranspose2d, type Conv2dOptions, type ConvTranspose2dOptions, type Padding2d } from './ops/conv.js';
// CNN: pooling and the fused batch normalization.
export * from './ops/pool.js';
export * from './ops/batch-norm.js';
// attention (Transformer family)
export { attention, type AttentionOptions } from './ops/attention.js';
export { peakMemory, resetPeakMemory } from './engine.js';
// The GPU backend (kiln-gpu through the native addon).
export { gpuInfo, synchronize, type GpuInfo } from './engine.js';
export type { Device } from './tensor.js';
