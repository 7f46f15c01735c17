/**
 * MultiHeadAttention: project queries, keys and values, split them into heads, run the fused
 * attention kernel (kiln.attention) on all heads at once, merge the heads, project out. Batch
 * first: [batch, seq, features], as PyTorch's `batch_first=True`.
 *
 * The heads are split and merged by views: [B, T, H·Dh] -> reshape [B, T, H, Dh] -> transpose to
 * [B, H, T, Dh] is read in place by the kernel, and its output comes back laid out [B, T, H, Dh], so
 * merging is free too. Projections are four Linear layers (qProj, kProj, vProj, outProj).
 */

import type { Tensor } from '../tensor.js';
import { attention } from '../ops/attention.js';
import { glorotUniform, zeros } from './init.js';
import { layerArgs, type LayerArgs } from './layer-args.js';
import { Linear } from './linear.js';
import { Module } from './module.js';
import { deriveSeed } from './init.js';
import type { JsonObject } from '../io/json.js';

/** Options of `nn.MultiHeadAttention`. */
export interface MultiHeadAttentionOptions {
  /** Dropout on the attention weights in training (default 0), inside the fused kernel. */
  dropout?: number;
  /** Biases on the four projections (default true). */
  bias?: boolean;
  /** Feature size of the key input (default dModel), e.g. an encoder of another width. */
  kDim?: number;
  /** Feature size of the value input (default kDim). */
  vDim?: number;
  /** Seeds the projections' initializers. */
  seed?: number;
}

/** Masks of one attention call. */
export interface AttentionMasks {
  /** Each query sees only keys at or before its position (aligned at the end when Tq < Tk). */
  causal?: boolean;
  /** `[batch, Tk]`: bool with true at padding keys (ignored), or float32 added to the scores (0 / -Infinity). */
  keyPaddingMask?: Tensor;
}

function shapeOf(t: Tensor): string {
  return `${t.dtype} [${t.shape.join(', ')}]`;
}

/** The checks of dModel and numHeads that MultiHeadAttention and the Transformer layers share. */
export function checkAttentionArgs(layer: string, dModel: number, numHeads: number): LayerArgs {
  const args = layerArgs(layer);
  args.positiveInt('dModel', dModel);
  args.positiveInt('numHeads', numHeads);
  if (dModel % numHeads !== 0) throw new Error(`${layer}: dModel must be divisible by numHeads (${dModel} / ${numHeads} is not whole)`);
  return args;
}

export class MultiHeadAttention extends Module<[Tensor, Tensor?, Tensor?, AttentionMasks?]> {
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly outProj: Linear;
  /** Features per head: dModel / numHeads. */
  readonly headDim: number;
  readonly dropout: number;
  readonly bias: boolean;
  readonly kDim: number;
  readonly vDim: number;

  /** Attention over dModel features split into numHeads heads (dModel must be divisible by numHeads). */
  constructor(readonly dModel: number, readonly numHeads: number, options: MultiHeadAttentionOptions = {}) {
    super();
    const args = checkAttentionArgs('MultiHeadAttention', dModel, numHeads);
    const o = args.options(options);
    this.kDim = args.positiveInt('kDim', o.kDim, dModel);
    this.vDim = args.positiveInt('vDim', o.vDim, this.kDim);
    this.dropout = args.dropout('dropout', o.dropout, 0);
    this.bias = args.flag('bias', o.bias, true);
    const seed = args.seed(o.seed);
    this.headDim = dModel / numHeads;
    // Glorot-uniform weights and zero biases, as PyTorch's nn.MultiheadAttention.
    const projection = (inFeatures: number, k: number) =>
      new Linear(inFeatures, dModel, { bias: this.bias, init: glorotUniform, biasInit: zeros, seed: deriveSeed(seed, k) });
    [this.qProj, this.kProj, this.vProj, this.outProj] = args.build(() => [projection(dModel, 0), projection(this.kDim, 1), projection(this.vDim, 2), projection(dModel, 3)]);
  }

  /**
   * query [B, Tq, dModel], key [B, Tk, kDim] (default query: self-attention), value [B, Tk, vDim]
   * (default key) -> [B, Tq, dModel].
   */
  forward(query: Tensor, key: Tensor = query, value: Tensor = key, masks: AttentionMasks = {}): Tensor {
    const name = `MultiHeadAttention(${this.dModel}, ${this.numHeads})`;
    const expect = (t: Tensor, what: string, features: number) => {
      if (t.rank !== 3 || t.shape[2] !== features || t.shape[0] !== query.shape[0]) {
        throw new Error(`${name}: ${what} must be [batch, seq, ${features}] with the query's batch ${query.shape[0] ?? '?'}; got ${what} ${shapeOf(t)} (query ${shapeOf(query)})`);
      }
    };
    expect(query, 'query', this.dModel);
    expect(key, 'key', this.kDim);
    expect(value, 'value', this.vDim);
    if (key.shape[1] !== value.shape[1]) throw new Error(`${name}: key and value must have the same length; got key ${shapeOf(key)}, value ${shapeOf(value)}`);
    const q = this.splitHeads(this.qProj.forward(query));
    const k = this.splitHeads(this.kProj.forward(key));
    const v = this.splitHeads(this.vProj.forward(value));
    const heads = attention(q, k, v, { causal: masks.causal, keyPaddingMask: masks.keyPaddingMask, dropout: this.training ? this.dropout : 0 });
    const [batch, , tq] = heads.shape;
    return this.outProj.forward(heads.transpose([0, 2, 1, 3]).reshape([batch, tq, this.dModel]));
  }

  /** [B, T, H·Dh] -> [B, H, T, Dh], a view. */
  private splitHeads(x: Tensor): Tensor {
    const [batch, t] = x.shape;
    return x.reshape([batch, t, this.numHeads, this.headDim]).transpose([0, 2, 1, 3]);
  }

  /** The constructor arguments, as JSON for a saved model's config. */
  config(): JsonObject {
    return { dModel: this.dModel, numHeads: this.numHeads, dropout: this.dropout, bias: this.bias, kDim: this.kDim, vDim: this.vDim };
  }

  /** A new layer from `config()`'s output (fresh weights: load the state dict next). */
  static fromConfig(c: JsonObject): MultiHeadAttention {
    return new MultiHeadAttention(c.dModel as number, c.numHeads as number, c as MultiHeadAttentionOptions);
  }
}
