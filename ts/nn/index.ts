/**
 * kiln.nn: the PyTorch-style module layer.
 *
 *   const model = new nn.Sequential(new nn.Linear(784, 512), new nn.ReLU(), new nn.Linear(512, 10));
 *   model.summary([784]);
 */

export { Module, type AnyModule, type LoadStateDictOptions, type LoadStateDictResult } from './module.js';
export { type SummaryOptions } from './summary.js';
export * as init from './init.js';
export type { Initializer, InitializerName, InitOptions } from './init.js';
export { Linear, type LinearOptions } from './linear.js';
export { ReLU, LeakyReLU, ELU, GELU, Sigmoid, Tanh, Softplus, Softmax, LogSoftmax } from './activations.js';
export { Dropout } from './dropout.js';
export { BatchNorm1d, type BatchNormOptions } from './batchnorm.js';
export { LayerNorm, type LayerNormOptions } from './layernorm.js';
export { Embedding, type EmbeddingOptions } from './embedding.js';
export { Flatten } from './flatten.js';
export { Sequential, Residual } from './containers.js';
// attention (Transformer family)
export { MultiHeadAttention, type MultiHeadAttentionOptions, type AttentionMasks } from './attention.js';
export { SinusoidalPositionalEncoding, LearnedPositionalEmbedding, type LearnedPositionalEmbeddingOptions } from './positional.js';
export { TransformerEncoderLayer, TransformerDecoderLayer, type TransformerLayerOptions, type DecoderMasks } from './transformer.js';
