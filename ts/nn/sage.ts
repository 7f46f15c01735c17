/**
 * SAGEConv: GraphSAGE's layer (Hamilton et al., 2017), h'_i = W_root · h_i + W_neigh · agg_{j -> i} h_j + b,
 * with agg the mean (default), sum or max over in-neighbours, as PyTorch Geometric's SAGEConv.
 * The aggregation is the message-passing step: Graph.aggregate (a fused spmm for sum and mean).
 */

import type { Tensor } from '../tensor.js';
import type { SegmentReducer } from '../ops/graph.js';
import { matmul } from '../ops/matmul.js';
import { SparseMatrix } from '../ops/sparse.js';
import { layerArgs } from './layer-args.js';
import { Linear } from './linear.js';
import { Module } from './module.js';
import type { Graph } from './graph.js';

/** Options of `nn.SAGEConv`. */
export interface SAGEConvOptions {
  /** How neighbours' features combine (default 'mean'). */
  aggregator?: SegmentReducer;
  /** Add the node's own transformed features, W_root · h_i (default true). */
  rootWeight?: boolean;
  /** Learn an additive bias (default true). */
  bias?: boolean;
  /** Scale each output row to unit L2 norm (default false). */
  normalize?: boolean;
  seed?: number;
}

/** x · Wᵀ for a Linear's weight, x dense or sparse. */
function project(layer: Linear, x: Tensor | SparseMatrix): Tensor {
  return x instanceof SparseMatrix ? x.matmul(layer.weight.transpose()) : matmul(x, layer.weight, false, true);
}

export class SAGEConv extends Module<[Tensor | SparseMatrix, Graph]> {
  /** Applied to the aggregated neighbours; holds the bias. */
  readonly neighbor: Linear;
  /** Applied to the node itself, or null without rootWeight. */
  readonly root: Linear | null;
  readonly aggregator: SegmentReducer;
  private readonly normalize: boolean;

  constructor(readonly inFeatures: number, readonly outFeatures: number, options: SAGEConvOptions = {}) {
    super();
    const args = layerArgs('SAGEConv');
    args.positiveInt('inFeatures', inFeatures);
    args.positiveInt('outFeatures', outFeatures);
    const o = args.options(options);
    this.aggregator = args.oneOf('aggregator', o.aggregator, ['sum', 'mean', 'max'], 'mean');
    const rootWeight = args.flag('rootWeight', o.rootWeight, true);
    const bias = args.flag('bias', o.bias, true);
    this.normalize = args.flag('normalize', o.normalize, false);
    const seed = args.seed(o.seed);
    [this.neighbor, this.root] = args.build(() => [
      new Linear(inFeatures, outFeatures, { bias, seed }),
      rootWeight ? new Linear(inFeatures, outFeatures, { bias: false, seed: seed === undefined ? undefined : seed + 1 }) : null,
    ]);
  }

  /**
   * x: [numNodes, inFeatures] (dense, or a SparseMatrix with the sum or mean aggregator) ->
   * [numNodes, outFeatures]
   */
  forward(x: Tensor | SparseMatrix, graph: Graph): Tensor {
    const name = `SAGEConv(${this.inFeatures} -> ${this.outFeatures})`;
    graph.checkFeatures(name, x, this.inFeatures);
    let y: Tensor;
    if (this.aggregator === 'max') {
      if (x instanceof SparseMatrix) throw new Error(`${name}: the max aggregator needs dense features; the sum and mean aggregators take a SparseMatrix`);
      y = project(this.neighbor, graph.aggregate(x, 'max'));
    } else {
      // Sum and mean are linear, so agg(x)·Wᵀ = agg(x·Wᵀ): project first, aggregate the narrower rows.
      y = graph.aggregate(project(this.neighbor, x), this.aggregator);
    }
    if (this.neighbor.bias !== null) y = y.add(this.neighbor.bias);
    if (this.root !== null) y = y.add(project(this.root, x));
    if (!this.normalize) return y;
    const norm = y.square().sum(-1, true).sqrt().maximum(1e-12);
    return y.div(norm);
  }
}
