/**
 * Transformer layers, pre-norm (LayerNorm before each sub-layer, as GPT-2 and most models since:
 * it trains stably without learning-rate warm-up tricks), with a GELU feed-forward block and
 * dropout after attention, inside the feed-forward block and after it. Batch first:
 * [batch, seq, dModel]. Sub-module names follow PyTorch's nn.TransformerEncoderLayer.
 *
 * A GPT-style decoder-only model stacks TransformerEncoderLayer with `causal: true` (no cross
 * attention); TransformerDecoderLayer is the encoder-decoder kind, attending to an encoder's output.
 */

import type { Tensor } from '../tensor.js';
import type { JsonObject } from '../io/json.js';
import { Dropout } from './dropout.js';
import { deriveSeed } from './init.js';
import { LayerNorm } from './layernorm.js';
import { Linear } from './linear.js';
import { checkAttentionArgs, MultiHeadAttention, type AttentionMasks } from './attention.js';
import { layerArgs } from './layer-args.js';
import { Module } from './module.js';

/** Options of the Transformer encoder and decoder layers. */
export interface TransformerLayerOptions {
  /** Hidden size of the feed-forward block (default 4·dModel). */
  dimFeedforward?: number;
  /** Dropout after attention, inside and after the feed-forward block, and on attention weights (default 0.1). */
  dropout?: number;
  /** LayerNorm epsilon (default 1e-5). */
  layerNormEps?: number;
  /** Biases in the projections and the feed-forward block (default true). */
  bias?: boolean;
  seed?: number;
}

/** The feed-forward sub-layer: Linear -> GELU -> Dropout -> Linear. */
class FeedForward extends Module {
  readonly linear1: Linear;
  readonly dropout: Dropout;
  readonly linear2: Linear;
  constructor(dModel: number, hidden: number, p: number, bias: boolean, seed?: number) {
    super();
    this.linear1 = new Linear(dModel, hidden, { bias, seed: deriveSeed(seed, 0) });
    this.dropout = new Dropout(p);
    this.linear2 = new Linear(hidden, dModel, { bias, seed: deriveSeed(seed, 1) });
  }
  /** [..., dModel] -> [..., dModel] */
  forward(x: Tensor): Tensor {
    return this.linear2.forward(this.dropout.forward(this.linear1.forward(x).gelu()));
  }
}

/**
 * What both layer kinds share: their settings (saved by config()) and how their sub-layers are
 * made. Sub-modules are created by the subclasses, so their names stay PyTorch's.
 */
abstract class TransformerLayer<In extends unknown[]> extends Module<In> {
  readonly dimFeedforward: number;
  readonly dropout: number;
  readonly layerNormEps: number;
  readonly bias: boolean;
  /** Seeds the sub-layers' initializers (derived per sub-layer). */
  private readonly seed: number | undefined;

  constructor(readonly dModel: number, readonly numHeads: number, options: TransformerLayerOptions) {
    super();
    // Every option is checked here, before the subclass builds its sub-layers, so an error names
    // this layer and its option (dimFeedforward), not the inner Linear's (inFeatures).
    const args = checkAttentionArgs(this.constructor.name, dModel, numHeads);
    const o = args.options(options);
    this.dimFeedforward = args.positiveInt('dimFeedforward', o.dimFeedforward, 4 * dModel);
    this.dropout = args.dropout('dropout', o.dropout, 0.1);
    this.layerNormEps = args.positive('layerNormEps', o.layerNormEps, 1e-5);
    this.bias = args.flag('bias', o.bias, true);
    this.seed = args.seed(o.seed);
  }

  /** Builds sub-layers so that what fails there (memory) names this layer. */
  protected buildSubLayers<T>(make: () => T): T {
    return layerArgs(this.constructor.name).build(make);
  }

  /** The k-th attention sub-layer. */
  protected makeAttention(k: number): MultiHeadAttention {
    return new MultiHeadAttention(this.dModel, this.numHeads, { dropout: this.dropout, bias: this.bias, seed: deriveSeed(this.seed, k) });
  }

  protected makeNorm(): LayerNorm {
    return new LayerNorm(this.dModel, { eps: this.layerNormEps });
  }

  /** The feed-forward sub-layer, seeded as the k-th sub-layer. */
  protected makeFeedForward(k: number): FeedForward {
    return new FeedForward(this.dModel, this.dimFeedforward, this.dropout, this.bias, deriveSeed(this.seed, k));
  }

  /** The constructor arguments, as JSON for a saved model's config (the static fromConfig reads it). */
  config(): JsonObject {
    return { dModel: this.dModel, numHeads: this.numHeads, dimFeedforward: this.dimFeedforward, dropout: this.dropout, layerNormEps: this.layerNormEps, bias: this.bias };
  }
}

/** A pre-norm Transformer encoder layer: self-attention and a feed-forward block, each behind a LayerNorm and a residual. [batch, T, dModel] -> [batch, T, dModel] */
export class TransformerEncoderLayer extends TransformerLayer<[Tensor, AttentionMasks?]> {
  readonly selfAttn: MultiHeadAttention;
  readonly norm1: LayerNorm;
  readonly dropout1: Dropout;
  readonly norm2: LayerNorm;
  readonly feedForward: FeedForward;
  readonly dropout2: Dropout;

  /** Self-attention then a feed-forward block, each as x + sublayer(norm(x)). */
  constructor(dModel: number, numHeads: number, options: TransformerLayerOptions = {}) {
    super(dModel, numHeads, options);
    [this.selfAttn, this.norm1, this.norm2, this.feedForward] = this.buildSubLayers(() => [this.makeAttention(0), this.makeNorm(), this.makeNorm(), this.makeFeedForward(1)]);
    this.dropout1 = new Dropout(this.dropout);
    this.dropout2 = new Dropout(this.dropout);
  }

  /**
   * x [B, T, dModel] -> [B, T, dModel]. masks.causal makes it a GPT-style decoder block;
   * masks.keyPaddingMask [B, T] hides padding positions.
   */
  forward(x: Tensor, masks: AttentionMasks = {}): Tensor {
    const n = this.norm1.forward(x);
    const h = x.add(this.dropout1.forward(this.selfAttn.forward(n, n, n, masks)));
    return h.add(this.dropout2.forward(this.feedForward.forward(this.norm2.forward(h))));
  }

  /** Rebuilds the layer from `config()` (fresh weights; load the saved ones after). */
  static fromConfig(c: JsonObject): TransformerEncoderLayer {
    return new TransformerEncoderLayer(c.dModel as number, c.numHeads as number, c as TransformerLayerOptions);
  }
}

/** Masks of a decoder layer call. */
export interface DecoderMasks {
  /** Causal self-attention (default true: a decoder predicts each position from the earlier ones). */
  causal?: boolean;
  /** [B, T] padding of the decoder's own positions. */
  keyPaddingMask?: Tensor;
  /** [B, S] padding of the encoder output (memory) positions. */
  memoryKeyPaddingMask?: Tensor;
}

/** A pre-norm Transformer decoder layer: causal self-attention, cross-attention over the encoder output (memory) and a feed-forward block. x [batch, T, dModel], memory [batch, S, dModel] -> [batch, T, dModel] */
export class TransformerDecoderLayer extends TransformerLayer<[Tensor, Tensor, DecoderMasks?]> {
  readonly selfAttn: MultiHeadAttention;
  readonly crossAttn: MultiHeadAttention;
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  readonly norm3: LayerNorm;
  readonly dropout1: Dropout;
  readonly dropout2: Dropout;
  readonly dropout3: Dropout;
  readonly feedForward: FeedForward;

  /** Causal self-attention, attention to the encoder output, a feed-forward block; each x + sublayer(norm(x)). */
  constructor(dModel: number, numHeads: number, options: TransformerLayerOptions = {}) {
    super(dModel, numHeads, options);
    [this.selfAttn, this.crossAttn, this.norm1, this.norm2, this.norm3] = this.buildSubLayers(() => [this.makeAttention(0), this.makeAttention(1), this.makeNorm(), this.makeNorm(), this.makeNorm()]);
    this.dropout1 = new Dropout(this.dropout);
    this.dropout2 = new Dropout(this.dropout);
    this.dropout3 = new Dropout(this.dropout);
    this.feedForward = this.buildSubLayers(() => this.makeFeedForward(2));
  }

  /** x [B, T, dModel] (decoder input), memory [B, S, dModel] (encoder output) -> [B, T, dModel]. */
  forward(x: Tensor, memory: Tensor, masks: DecoderMasks = {}): Tensor {
    const n1 = this.norm1.forward(x);
    const selfMasks = { causal: masks.causal ?? true, keyPaddingMask: masks.keyPaddingMask };
    const h1 = x.add(this.dropout1.forward(this.selfAttn.forward(n1, n1, n1, selfMasks)));
    const cross = this.crossAttn.forward(this.norm2.forward(h1), memory, memory, { keyPaddingMask: masks.memoryKeyPaddingMask });
    const h2 = h1.add(this.dropout2.forward(cross));
    return h2.add(this.dropout3.forward(this.feedForward.forward(this.norm3.forward(h2))));
  }

  /** Rebuilds the layer from `config()` (fresh weights; load the saved ones after). */
  static fromConfig(c: JsonObject): TransformerDecoderLayer {
    return new TransformerDecoderLayer(c.dModel as number, c.numHeads as number, c as TransformerLayerOptions);
  }
}
