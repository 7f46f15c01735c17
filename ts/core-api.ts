/**
 * The platform-independent API, shared by the Node entry (index.ts) and the browser entry
 * (browser.ts); each adds what only it can offer (files, MNIST, callbacks that write files; init).
 */

export { Tensor, type TensorLike, type TypedArray } from './tensor.js';
// Attaches the op methods (x.add(b), x.matmul(w), ...) to Tensor: tensor.ts cannot import the ops
// that import it (docs/architecture.md, "TypeScript").
import './tensor-methods/index.js';
export type { DType } from './backends/backend.js';
export { tidy, memory, setBackend, getBackend, simdLevel, numThreads, type BackendName, type TensorContainer } from './engine.js';
export { noGrad, gradients, grad, grads, valueAndGrad, valueAndGrads } from './autograd.js';
// The op modules' types; their functions are exported below, named (see "Errors name the function").
export * from './ops/creation.js';
export * from './ops/elementwise.js';
export * from './ops/reduce.js';
export * from './ops/matmul.js';
export * from './ops/shape.js';
export * as losses from './losses-namespace.js';
export * as optim from './optim/index.js';
export * as nn from './nn/index.js';
// graph neural networks: message passing over an edge list
export * from './ops/graph.js';
export { SparseMatrix } from './ops/sparse.js';
export * as interpret from './interpret/index.js';
// Recurrent layers: the fused one-layer op under nn.RNN / nn.LSTM / nn.GRU.
export { type RecurrentCell, type RecurrentWeights, type RecurrentResult } from './ops/recurrent.js';
// Weight-only quantization: the kernels, and kiln.quantize(model, { bits }) for whole models.
export * from './ops/quant.js';
export { type QuantizeOptions, type QuantizedActivations } from './nn/quantized.js';
// convolution (CNN family)
export { type Conv2dOptions, type ConvTranspose2dOptions, type Padding2d } from './ops/conv.js';
// CNN: pooling and the fused batch normalization.
export * from './ops/pool.js';
export * from './ops/batch-norm.js';
// attention (Transformer family)
export { type AttentionOptions } from './ops/attention.js';
export { peakMemory, resetPeakMemory } from './engine.js';
// The GPU backend (kiln-gpu through the native addon).
export { gpuInfo, synchronize, type GpuInfo } from './engine.js';
export type { Device } from './tensor.js';

// ---- Errors name the function the user called (issue 13, class 8; ts/named-errors.ts) ----
// `kiln.transpose(3)` says "transpose: ... (raised by permute)", not "permute: ...". Each public
// function is wrapped once, here where it is exported; these local exports shadow the same names
// of the `export *` lines above. Functions that take a callback (tidy, noGrad, grad, ...) are not
// wrapped: the errors of the user's own code inside them are not theirs to rename.
import { namedFunctions } from './named-errors.js';
import * as creationOps from './ops/creation.js';
import * as elementwiseOps from './ops/elementwise.js';
import * as reduceOps from './ops/reduce.js';
import * as matmulOps from './ops/matmul.js';
import * as shapeOps from './ops/shape.js';
import * as graphOps from './ops/graph.js';
import * as quantOps from './ops/quant.js';
import * as poolOps from './ops/pool.js';
import * as batchNormOps from './ops/batch-norm.js';
import * as convOps from './ops/conv.js';
import * as attentionOps from './ops/attention.js';
import * as recurrentOps from './ops/recurrent.js';
import * as lossFunctions from './losses.js';
import * as contrastive from './contrastive.js';
import * as autograd from './autograd.js';
import * as engine from './engine.js';
import * as quantizedLayers from './nn/quantized.js';

export const { arange, eye, full, ones, onesLike, randn, randu, scalar, setSeed, tensor, zeros, zerosLike } = namedFunctions(creationOps);
export const { abs, add, cos, div, elu, equal, exp, gelu, greater, greaterEqual, leakyRelu, less, lessEqual, log, maximum, minimum, mul, neg, notEqual, pow, relu, rsqrt, sigmoid, sin, softplus, softsign, sqrt, square, sub, tanh, where } = namedFunctions(elementwiseOps);
export const { argmax, argmin, logSoftmax, logSumExp, max, mean, min, softmax, sum, variance } = namedFunctions(reduceOps);
export const { matmul } = namedFunctions(matmulOps);
export const { cast, concat, contiguous, expand, gather, oneHot, pad, permute, reshape, scatterAdd, slice, split, squeeze, stack, transpose, unsqueeze } = namedFunctions(shapeOps);
export const { segmentReduce, spmm } = namedFunctions(graphOps);
export const { conv2dQ4, conv2dQ8, conv2dW8A8, dequantizeInt4, dequantizeInt8, linearQ4, linearQ8, linearW8A8, quantizeInt4, quantizeInt8 } = namedFunctions(quantOps);
export const { avgPool2d, maxPool2d } = namedFunctions(poolOps);
export const { batchNorm } = namedFunctions(batchNormOps);
export const { conv2d, convTranspose2d } = namedFunctions(convOps);
export const { attention } = namedFunctions(attentionOps);
export const { recurrent } = namedFunctions(recurrentOps);
export const { crossEntropy, binaryCrossEntropy, mse, huber, klDivergence, gaussianKl, distillationLoss } = namedFunctions(lossFunctions);
export const { ntXent } = namedFunctions(contrastive);
export const { backward, setRequiresGrad, detach, assign } = namedFunctions(autograd);
export const { keep, dispose } = namedFunctions(engine);
export const { quantize, quantizationConfig } = namedFunctions(quantizedLayers);
