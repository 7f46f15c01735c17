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
import { Linear as LinearLayer } from './linear.js';
export { type LinearOptions } from './linear.js';
import { ReLU as ReLULayer, LeakyReLU as LeakyReLULayer, ELU as ELULayer, GELU as GELULayer, Sigmoid as SigmoidLayer, Tanh as TanhLayer, Softplus as SoftplusLayer, Softmax as SoftmaxLayer, LogSoftmax as LogSoftmaxLayer } from './activations.js';
import { Dropout as DropoutLayer } from './dropout.js';
import { BatchNorm1d as BatchNorm1dLayer } from './batchnorm.js';
export { type BatchNormOptions } from './batchnorm.js';
import { LayerNorm as LayerNormLayer } from './layernorm.js';
export { type LayerNormOptions } from './layernorm.js';
import { Embedding as EmbeddingLayer } from './embedding.js';
export { type EmbeddingOptions } from './embedding.js';
import { Flatten as FlattenLayer } from './flatten.js';
import { Sequential as SequentialLayer, Residual as ResidualLayer } from './containers.js';
// graph neural networks
import { Graph as GraphLayer } from './graph.js';
export { type WeightedEdges } from './graph.js';
import { GCNConv as GCNConvLayer } from './gcn.js';
export { type GCNConvOptions } from './gcn.js';
import { SAGEConv as SAGEConvLayer } from './sage.js';
export { type SAGEConvOptions } from './sage.js';
// variational autoencoders
import { VAE as VAELayer } from './vae.js';
export { reparameterize, type VAEOutput, type VAEOptions, type NegativeElbo } from './vae.js';
// Recurrent layers.
import { RNN as RNNLayer, LSTM as LSTMLayer, GRU as GRULayer } from './recurrent.js';
export { type RecurrentOptions, type RNNOptions, type RecurrentConfig } from './recurrent.js';
// Weight-only quantization for inference.
import { QuantizedLinear as QuantizedLinearLayer, QuantizedConv2d as QuantizedConv2dLayer } from './quantized.js';
export { quantize, quantizationConfig, type QuantizeOptions, type QuantizeBits, type QuantizationConfig } from './quantized.js';
// convolution (CNN family)
import { Conv2d as Conv2dLayer, ConvTranspose2d as ConvTranspose2dLayer } from './conv.js';
export { type Conv2dLayerOptions, type ConvTranspose2dLayerOptions } from './conv.js';
// CNN: pooling layers and BatchNorm2d.
import { BatchNorm2d as BatchNorm2dLayer } from './batchnorm.js';
// Batch statistics over every rank of a data-parallel job (docs/distributed.md).
import { SyncBatchNorm as SyncBatchNormLayer } from './sync-batchnorm.js';
export { convertSyncBatchNorm } from './sync-batchnorm.js';
import { MaxPool2d as MaxPool2dLayer, AvgPool2d as AvgPool2dLayer, GlobalAvgPool2d as GlobalAvgPool2dLayer, AdaptiveAvgPool2d as AdaptiveAvgPool2dLayer } from './pooling.js';
// generative models: GAN objectives and DDPM diffusion
export { discriminatorLoss, generatorLoss } from './gan.js';
import { DDPMSchedule as DDPMScheduleLayer } from './diffusion.js';
export { timestepEmbedding, withTimestep, type LinearScheduleOptions, type NoisePredictor, type SampleOptions } from './diffusion.js';
// attention (Transformer family)
import { MultiHeadAttention as MultiHeadAttentionLayer } from './attention.js';
export { type MultiHeadAttentionOptions, type AttentionMasks } from './attention.js';
import { SinusoidalPositionalEncoding as SinusoidalPositionalEncodingLayer, LearnedPositionalEmbedding as LearnedPositionalEmbeddingLayer } from './positional.js';
export { type LearnedPositionalEmbeddingOptions } from './positional.js';
import { TransformerEncoderLayer as TransformerEncoderLayerLayer, TransformerDecoderLayer as TransformerDecoderLayerLayer } from './transformer.js';
export { type TransformerLayerOptions, type DecoderMasks } from './transformer.js';
// CNN: residual blocks (ResNet BasicBlock).
import { BasicBlock as BasicBlockLayer } from './resnet.js';
export { type BasicBlockOptions } from './resnet.js';

// ---- Layers name themselves in their constructors' errors too (forward: nn/module.ts) ----
import { namedLayer } from '../named-errors.js';
export const Linear = namedLayer(LinearLayer);
export type Linear = LinearLayer;
export const ReLU = namedLayer(ReLULayer);
export type ReLU = ReLULayer;
export const LeakyReLU = namedLayer(LeakyReLULayer);
export type LeakyReLU = LeakyReLULayer;
export const ELU = namedLayer(ELULayer);
export type ELU = ELULayer;
export const GELU = namedLayer(GELULayer);
export type GELU = GELULayer;
export const Sigmoid = namedLayer(SigmoidLayer);
export type Sigmoid = SigmoidLayer;
export const Tanh = namedLayer(TanhLayer);
export type Tanh = TanhLayer;
export const Softplus = namedLayer(SoftplusLayer);
export type Softplus = SoftplusLayer;
export const Softmax = namedLayer(SoftmaxLayer);
export type Softmax = SoftmaxLayer;
export const LogSoftmax = namedLayer(LogSoftmaxLayer);
export type LogSoftmax = LogSoftmaxLayer;
export const Dropout = namedLayer(DropoutLayer);
export type Dropout = DropoutLayer;
export const BatchNorm1d = namedLayer(BatchNorm1dLayer);
export type BatchNorm1d = BatchNorm1dLayer;
export const LayerNorm = namedLayer(LayerNormLayer);
export type LayerNorm = LayerNormLayer;
export const Embedding = namedLayer(EmbeddingLayer);
export type Embedding = EmbeddingLayer;
export const Flatten = namedLayer(FlattenLayer);
export type Flatten = FlattenLayer;
export const Sequential = namedLayer(SequentialLayer);
export type Sequential = SequentialLayer;
export const Residual = namedLayer(ResidualLayer);
export type Residual = ResidualLayer;
export const Graph = namedLayer(GraphLayer);
export type Graph = GraphLayer;
export const GCNConv = namedLayer(GCNConvLayer);
export type GCNConv = GCNConvLayer;
export const SAGEConv = namedLayer(SAGEConvLayer);
export type SAGEConv = SAGEConvLayer;
export const VAE = namedLayer(VAELayer);
export type VAE = VAELayer;
export const RNN = namedLayer(RNNLayer);
export type RNN = RNNLayer;
export const LSTM = namedLayer(LSTMLayer);
export type LSTM = LSTMLayer;
export const GRU = namedLayer(GRULayer);
export type GRU = GRULayer;
export const QuantizedLinear = namedLayer(QuantizedLinearLayer);
export type QuantizedLinear = QuantizedLinearLayer;
export const QuantizedConv2d = namedLayer(QuantizedConv2dLayer);
export type QuantizedConv2d = QuantizedConv2dLayer;
export const Conv2d = namedLayer(Conv2dLayer);
export type Conv2d = Conv2dLayer;
export const ConvTranspose2d = namedLayer(ConvTranspose2dLayer);
export type ConvTranspose2d = ConvTranspose2dLayer;
export const BatchNorm2d = namedLayer(BatchNorm2dLayer);
export type BatchNorm2d = BatchNorm2dLayer;
export const SyncBatchNorm = namedLayer(SyncBatchNormLayer);
export type SyncBatchNorm = SyncBatchNormLayer;
export const MaxPool2d = namedLayer(MaxPool2dLayer);
export type MaxPool2d = MaxPool2dLayer;
export const AvgPool2d = namedLayer(AvgPool2dLayer);
export type AvgPool2d = AvgPool2dLayer;
export const GlobalAvgPool2d = namedLayer(GlobalAvgPool2dLayer);
export type GlobalAvgPool2d = GlobalAvgPool2dLayer;
export const AdaptiveAvgPool2d = namedLayer(AdaptiveAvgPool2dLayer);
export type AdaptiveAvgPool2d = AdaptiveAvgPool2dLayer;
export const DDPMSchedule = namedLayer(DDPMScheduleLayer);
export type DDPMSchedule = DDPMScheduleLayer;
export const MultiHeadAttention = namedLayer(MultiHeadAttentionLayer);
export type MultiHeadAttention = MultiHeadAttentionLayer;
export const SinusoidalPositionalEncoding = namedLayer(SinusoidalPositionalEncodingLayer);
export type SinusoidalPositionalEncoding = SinusoidalPositionalEncodingLayer;
export const LearnedPositionalEmbedding = namedLayer(LearnedPositionalEmbeddingLayer);
export type LearnedPositionalEmbedding = LearnedPositionalEmbeddingLayer;
export const TransformerEncoderLayer = namedLayer(TransformerEncoderLayerLayer);
export type TransformerEncoderLayer = TransformerEncoderLayerLayer;
export const TransformerDecoderLayer = namedLayer(TransformerDecoderLayerLayer);
export type TransformerDecoderLayer = TransformerDecoderLayerLayer;
export const BasicBlock = namedLayer(BasicBlockLayer);
export type BasicBlock = BasicBlockLayer;
