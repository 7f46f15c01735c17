/**
 * The platform-independent API, shared by the Node entry (index.ts) and the browser entry
 * (browser.ts); each adds what only it can offer (files, MNIST, callbacks that write files; init).
 */

export { Tensor, type TensorLike, type TypedArray } from './tensor.js';
// Attaches the op methods (x.add(b), x.matmul(w), ...) to Tensor: tensor.ts cannot import the ops
// that import it (docs/architecture.md, "TypeScript").
import './tensor-methods/index.js';
export type { DType } from './backends/backend.js';
export { tidy, memory, setBackend, getBackend, simdLevel, numThreads, type BackendName, type BackendOptions, type TensorContainer } from './engine.js';
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
export { type Conv2dActivationOptions, type Conv2dFilterSet, type Conv2dOptions, type ConvActivation, type ConvTranspose2dOptions, type Padding2d } from './ops/conv.js';
// CNN: pooling and the fused batch normalization.
export * from './ops/pool.js';
export * from './ops/batch-norm.js';
export * from './ops/layer-norm.js';
export * from './ops/linear.js';
// attention (Transformer family)
export { type AttentionOptions } from './ops/attention.js';
export { peakMemory, resetPeakMemory } from './engine.js';
// The GPU backend (kiln-gpu through the native addon).
export { gpuInfo, synchronize, type GpuInfo } from './engine.js';
export type { Device } from './tensor.js';

// ---- Errors name the function the user called (issue 13, class 8; ts/named-errors.ts) ----
// `kiln.transpose(3)` says "transpose: ... (raised by permute)", not "permute: ...". Each public
// function is wrapped once, here where it is exported; these local exports shadow the same names
// of the `export *` lines above. One line each: TypeDoc documents a `@function` const with the
// original declaration's signature and doc comment, which it cannot do for destructured names.
// Functions that take a callback (tidy, noGrad, grad, ...) are not
// wrapped: the errors of the user's own code inside them are not theirs to rename.
import { namedFunction, namedFunctions } from './named-errors.js';
import * as creationOps from './ops/creation.js';
import * as elementwiseOps from './ops/elementwise.js';
import * as reduceOps from './ops/reduce.js';
import * as matmulOps from './ops/matmul.js';
import * as shapeOps from './ops/shape.js';
import * as graphOps from './ops/graph.js';
import * as quantOps from './ops/quant.js';
import * as poolOps from './ops/pool.js';
import * as batchNormOps from './ops/batch-norm.js';
import * as layerNormOps from './ops/layer-norm.js';
import * as linearOps from './ops/linear.js';
import * as convOps from './ops/conv.js';
import * as attentionOps from './ops/attention.js';
import * as recurrentOps from './ops/recurrent.js';
import * as autograd from './autograd.js';
import * as engine from './engine.js';
import * as quantizedLayers from './nn/quantized.js';

const creationOpsNamed = namedFunctions(creationOps);
/** @function */ export const arange = creationOpsNamed.arange;
/** @function */ export const eye = creationOpsNamed.eye;
/** @function */ export const full = creationOpsNamed.full;
/** @function */ export const ones = creationOpsNamed.ones;
/** @function */ export const onesLike = creationOpsNamed.onesLike;
/** @function */ export const randn = creationOpsNamed.randn;
/** @function */ export const randu = creationOpsNamed.randu;
/** @function */ export const scalar = creationOpsNamed.scalar;
/** @function */ export const setSeed = creationOpsNamed.setSeed;
/** @function */ export const tensor = creationOpsNamed.tensor;
/** @function */ export const zeros = creationOpsNamed.zeros;
/** @function */ export const zerosLike = creationOpsNamed.zerosLike;
const elementwiseOpsNamed = namedFunctions(elementwiseOps);
/** @function */ export const abs = elementwiseOpsNamed.abs;
/** @function */ export const add = elementwiseOpsNamed.add;
/** @function */ export const cos = elementwiseOpsNamed.cos;
/** @function */ export const div = elementwiseOpsNamed.div;
/** @function */ export const elu = elementwiseOpsNamed.elu;
/** @function */ export const equal = elementwiseOpsNamed.equal;
/** @function */ export const exp = elementwiseOpsNamed.exp;
/** @function */ export const gelu = elementwiseOpsNamed.gelu;
/** @function */ export const greater = elementwiseOpsNamed.greater;
/** @function */ export const greaterEqual = elementwiseOpsNamed.greaterEqual;
/** @function */ export const leakyRelu = elementwiseOpsNamed.leakyRelu;
/** @function */ export const less = elementwiseOpsNamed.less;
/** @function */ export const lessEqual = elementwiseOpsNamed.lessEqual;
/** @function */ export const log = elementwiseOpsNamed.log;
/** @function */ export const maximum = elementwiseOpsNamed.maximum;
/** @function */ export const minimum = elementwiseOpsNamed.minimum;
/** @function */ export const mul = elementwiseOpsNamed.mul;
/** @function */ export const neg = elementwiseOpsNamed.neg;
/** @function */ export const notEqual = elementwiseOpsNamed.notEqual;
/** @function */ export const pow = elementwiseOpsNamed.pow;
/** @function */ export const mish = elementwiseOpsNamed.mish;
/** @function */ export const relu = elementwiseOpsNamed.relu;
/** @function */ export const rsqrt = elementwiseOpsNamed.rsqrt;
/** @function */ export const sigmoid = elementwiseOpsNamed.sigmoid;
/** @function */ export const sin = elementwiseOpsNamed.sin;
/** @function */ export const softplus = elementwiseOpsNamed.softplus;
/** @function */ export const softsign = elementwiseOpsNamed.softsign;
/** @function */ export const sqrt = elementwiseOpsNamed.sqrt;
/** @function */ export const square = elementwiseOpsNamed.square;
/** @function */ export const sub = elementwiseOpsNamed.sub;
/** @function */ export const tanh = elementwiseOpsNamed.tanh;
/** @function */ export const where = elementwiseOpsNamed.where;
const reduceOpsNamed = namedFunctions(reduceOps);
/** @function */ export const argmax = reduceOpsNamed.argmax;
/** @function */ export const argmin = reduceOpsNamed.argmin;
/** @function */ export const logSoftmax = reduceOpsNamed.logSoftmax;
/** @function */ export const logSumExp = reduceOpsNamed.logSumExp;
/** @function */ export const max = reduceOpsNamed.max;
/** @function */ export const mean = reduceOpsNamed.mean;
/** @function */ export const min = reduceOpsNamed.min;
/** @function */ export const softmax = reduceOpsNamed.softmax;
/** @function */ export const sum = reduceOpsNamed.sum;
/** @function */ export const variance = reduceOpsNamed.variance;
/** @function */ export const matmul = namedFunction('matmul', matmulOps.matmul);
const shapeOpsNamed = namedFunctions(shapeOps);
/** @function */ export const cast = shapeOpsNamed.cast;
/** @function */ export const concat = shapeOpsNamed.concat;
/** @function */ export const contiguous = shapeOpsNamed.contiguous;
/** @function */ export const expand = shapeOpsNamed.expand;
/** @function */ export const gather = shapeOpsNamed.gather;
/** @function */ export const oneHot = shapeOpsNamed.oneHot;
/** @function */ export const pad = shapeOpsNamed.pad;
/** @function */ export const permute = shapeOpsNamed.permute;
/** @function */ export const reshape = shapeOpsNamed.reshape;
/** @function */ export const scatterAdd = shapeOpsNamed.scatterAdd;
/** @function */ export const slice = shapeOpsNamed.slice;
/** @function */ export const split = shapeOpsNamed.split;
/** @function */ export const squeeze = shapeOpsNamed.squeeze;
/** @function */ export const stack = shapeOpsNamed.stack;
/** @function */ export const transpose = shapeOpsNamed.transpose;
/** @function */ export const unsqueeze = shapeOpsNamed.unsqueeze;
const graphOpsNamed = namedFunctions(graphOps);
/** @function */ export const segmentReduce = graphOpsNamed.segmentReduce;
/** @function */ export const spmm = graphOpsNamed.spmm;
const quantOpsNamed = namedFunctions(quantOps);
/** @function */ export const conv2dQ4 = quantOpsNamed.conv2dQ4;
/** @function */ export const conv2dQ8 = quantOpsNamed.conv2dQ8;
/** @function */ export const conv2dW8A8 = quantOpsNamed.conv2dW8A8;
/** @function */ export const dequantizeInt4 = quantOpsNamed.dequantizeInt4;
/** @function */ export const dequantizeInt8 = quantOpsNamed.dequantizeInt8;
/** @function */ export const linearQ4 = quantOpsNamed.linearQ4;
/** @function */ export const linearQ8 = quantOpsNamed.linearQ8;
/** @function */ export const linearW8A8 = quantOpsNamed.linearW8A8;
/** @function */ export const quantizeInt4 = quantOpsNamed.quantizeInt4;
/** @function */ export const quantizeInt8 = quantOpsNamed.quantizeInt8;
const poolOpsNamed = namedFunctions(poolOps);
/** @function */ export const avgPool2d = poolOpsNamed.avgPool2d;
/** @function */ export const maxPool2d = poolOpsNamed.maxPool2d;
/** @function */ export const batchNorm = namedFunction('batchNorm', batchNormOps.batchNorm);
/** @function */ export const layerNorm = namedFunction('layerNorm', layerNormOps.layerNorm);
/** @function */ export const linear = namedFunction('linear', linearOps.linear);
const convOpsNamed = namedFunctions(convOps);
/** @function */ export const conv2d = convOpsNamed.conv2d;
/** @function */ export const conv2dConcat = convOpsNamed.conv2dConcat;
/** @function */ export const convTranspose2d = convOpsNamed.convTranspose2d;
/** @function */ export const attention = namedFunction('attention', attentionOps.attention);
/** @function */ export const recurrent = namedFunction('recurrent', recurrentOps.recurrent);
export { crossEntropy, binaryCrossEntropy, mse, huber, klDivergence, gaussianKl, distillationLoss, ntXent } from './losses-namespace.js';
const autogradNamed = namedFunctions(autograd);
/** @function */ export const backward = autogradNamed.backward;
/** @function */ export const setRequiresGrad = autogradNamed.setRequiresGrad;
/** @function */ export const detach = autogradNamed.detach;
/** @function */ export const assign = autogradNamed.assign;
const engineNamed = namedFunctions(engine);
/** @function */ export const keep = engineNamed.keep;
/** @function */ export const dispose = engineNamed.dispose;
const quantizedLayersNamed = namedFunctions(quantizedLayers);
/** @function */ export const quantize = quantizedLayersNamed.quantize;
/** @function */ export const quantizationConfig = quantizedLayersNamed.quantizationConfig;
