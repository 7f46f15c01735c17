/**
 * SAGEConv: GraphSAGE's layer (Hamilton et al., 2017), h'_i = W_root · h_i + W_neigh · agg_{j -> i} h_j + b,
 * with agg the mean (default), sum or max over in-neighbours, as PyTorch Geometric's SAGEConv.
 * The aggregation is the message-passing step: Graph.aggregate (a fused spmm for sum and mean).
 */

import type { Tensor } from '../tensor.js';
import type { SegmentReducer } from '../ops/graph.js';
import { Linear } from './linear.js';
import { Module } from './module.js';
import type { Graph } from './graph.js';

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

export class SAGEConv extends Module<[Tensor, Graph]> {
  /** Applied to the aggregated neighbours; holds the bias. */
  readonly neighbor: Linear;
  /** Applied to the node itself, or null without rootWeight. */
  readonly root: Linear | null;
  readonly aggregator: SegmentReducer;
  private readonly normalize: boolean;

  constructor(readonly inFeatures: number, readonly outFeatures: number, options: SAGEConvOptions = {}) {
    super();
    this.aggregator = options.aggregator ?? 'mean';
    if (!['sum', 'mean', 'max'].includes(this.aggregator)) {
      throw new Error(`SAGEConv: aggregator must be 'sum', 'mean' or 'max', got '${String(options.aggregator)}'`);
    }
    this.neighbor = new Linear(inFeatures, outFeatures, { bias: options.bias ?? true, seed: options.seed });
    this.root = (options.rootWeight ?? true) ? new Linear(inFeatures, outFeatures, { bias: false, seed: options.seed === undefined ? undefined : options.seed + 1 }) : null;
    this.normalize = options.normalize ?? false;
  }

  /** x: [numNodes, inFeatures] -> [numNodes, outFeatures] */
  forward(x: Tensor, graph: Graph): Tensor {
    graph.checkFeatures(`SAGEConv(${this.inFeatures} -> ${this.outFeatures})`, x, this.inFeatures);
    let y = this.neighbor.forward(graph.aggregate(x, this.aggregator));
    if (this.root !== null) y = y.add(this.root.forward(x));
    if (!this.normalize) return y;
    const norm = y.square().sum(-1, true).sqrt().maximum(1e-12);
    return y.div(norm);
  }
}
