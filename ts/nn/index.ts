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
export { ReLU, LeakyReLU, ELU, GELU, Sigmoid, Tanh, Mish, Softplus, Softmax, LogSoftmax } from './activations.js';
export { Dropout } from './dropout.js';
export { BatchNorm1d, type BatchNormOptions } from './batchnorm.js';
export { LayerNorm, type LayerNormOptions } from './layernorm.js';
export { Embedding, type EmbeddingOptions } from './embedding.js';
export { Flatten } from './flatten.js';
export { Sequential, Residual } from './containers.js';
// graph neural networks
export { Graph, type WeightedEdges } from './graph.js';
export { GCNConv, type GCNConvOptions } from './gcn.js';
export { SAGEConv, type SAGEConvOptions } from './sage.js';
// variational autoencoders
export { VAE, reparameterize, type VAEOutput, type VAEOptions, type NegativeElbo } from './vae.js';
// Recurrent layers.
export { RNN, LSTM, GRU, type RecurrentOptions, type RNNOptions, type RecurrentConfig } from './recurrent.js';
// Weight-only quantization for inference.
export { QuantizedLinear, QuantizedConv2d, quantize, quantizationConfig, type QuantizeOptions, type QuantizeBits, type QuantizationConfig } from './quantized.js';
// convolution (CNN family)
export { Conv2d, ConvTranspose2d, type Conv2dLayerOptions, type ConvTranspose2dLayerOptions } from './conv.js';
// CNN: pooling layers and BatchNorm2d.
export { BatchNorm2d } from './batchnorm.js';
// Batch statistics over every rank of a data-parallel job (docs/distributed.md).
export { SyncBatchNorm, convertSyncBatchNorm } from './sync-batchnorm.js';
export { MaxPool2d, AvgPool2d, GlobalAvgPool2d, AdaptiveAvgPool2d } from './pooling.js';
// generative models: GAN objectives and DDPM diffusion
export { discriminatorLoss, generatorLoss } from './gan.js';
export { DDPMSchedule, timestepEmbedding, withTimestep, type LinearScheduleOptions, type NoisePredictor, type SampleOptions } from './diffusion.js';
// attention (Transformer family)
export { MultiHeadAttention, type MultiHeadAttentionOptions, type AttentionMasks } from './attention.js';
export { SinusoidalPositionalEncoding, LearnedPositionalEmbedding, type LearnedPositionalEmbeddingOptions } from './positional.js';
export { TransformerEncoderLayer, TransformerDecoderLayer, type TransformerLayerOptions, type DecoderMasks } from './transformer.js';
// CNN: residual blocks (ResNet BasicBlock).
export { BasicBlock, type BasicBlockOptions } from './resnet.js';
