/**
 * Graph: the edge list that message-passing layers (GCNConv, SAGEConv) run over, with the
 * per-edge normalizations they need computed once and cached, since a layer is applied to the
 * same graph every epoch. Messages flow along edges from src[e] to dst[e]; an undirected graph
 * holds both directions (`Graph.undirected` adds them).
 *
 *   const g = nn.Graph.undirected(citing, cited, numNodes);
 *   const h = new nn.GCNConv(1433, 16).forward(features, g);   // [numNodes, 16]
 *   g.dispose();
 */

import { keep } from '../engine.js';
import type { Tensor } from '../tensor.js';
import { tensor } from '../ops/creation.js';
import { gather } from '../ops/shape.js';
import { segmentReduce, spmm, type SegmentReducer } from '../ops/graph.js';
import { SparseMatrix } from '../ops/sparse.js';
import { layerArgs } from './layer-args.js';

/** An edge list with one weight per edge, as spmm takes it. All int32 / float32 [E]. */
export interface WeightedEdges {
  src: Tensor;
  dst: Tensor;
  weight: Tensor;
}

function toInt32(name: string, v: ArrayLike<number>, numNodes: number): Int32Array {
  const out = new Int32Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const n = v[i];
    if (!Number.isInteger(n) || n < 0 || n >= numNodes) {
      throw new Error(`Graph: ${name}[${i}] = ${n} is not a node index in [0, ${numNodes}) (the graph has ${numNodes} nodes)`);
    }
    out[i] = n;
  }
  return out;
}

/** A graph's edge list for the message-passing layers, with the normalizations they need cached (dispose it when done). */
export class Graph {
  /** int32 [E]: the node each edge leaves. */
  readonly src: Tensor;
  /** int32 [E]: the node each edge enters. */
  readonly dst: Tensor;
  readonly numEdges: number;
  private readonly hostSrc: Int32Array;
  private readonly hostDst: Int32Array;
  private gcn: WeightedEdges | null = null;
  private meanWeight: Tensor | null = null;
  private disposed = false;

  /** Directed edges src[e] -> dst[e] between nodes 0..numNodes-1. */
  constructor(src: ArrayLike<number>, dst: ArrayLike<number>, readonly numNodes: number) {
    const args = layerArgs('Graph');
    // Node indices cross as int32.
    if (!Number.isInteger(numNodes) || numNodes < 0 || numNodes > 2 ** 31) args.fail('numNodes', 'an integer from 0 to 2^31', numNodes);
    args.numbers('src', src, 'node indices');
    args.numbers('dst', dst, 'node indices');
    if (src.length !== dst.length) throw new Error(`Graph: src has ${src.length} entries but dst has ${dst.length}; they must pair up, one per edge`);
    this.hostSrc = toInt32('src', src, numNodes);
    this.hostDst = toInt32('dst', dst, numNodes);
    this.numEdges = src.length;
    this.src = keep(tensor(this.hostSrc, [this.numEdges]));
    this.dst = keep(tensor(this.hostDst, [this.numEdges]));
  }

  /**
   * The undirected graph of the given pairs: each pair becomes edges both ways; repeated pairs
   * (a -> b listed twice, or as both a -> b and b -> a) count once. Self pairs stay single.
   */
  static undirected(a: ArrayLike<number>, b: ArrayLike<number>, numNodes: number): Graph {
    if (a.length !== b.length) throw new Error(`Graph.undirected: the endpoint lists have ${a.length} and ${b.length} entries; they must pair up`);
    // Both directions of every pair, sorted by (src, dst) so repeats sit side by side.
    const from = Float64Array.from({ length: 2 * a.length }, (_, i) => (i < a.length ? a[i] : b[i - a.length]));
    const to = Float64Array.from({ length: 2 * a.length }, (_, i) => (i < a.length ? b[i] : a[i - a.length]));
    const order = Array.from(from.keys()).sort((i, j) => from[i] - from[j] || to[i] - to[j]);
    const src: number[] = [];
    const dst: number[] = [];
    for (const i of order) {
      const last = src.length - 1;
      if (last >= 0 && src[last] === from[i] && dst[last] === to[i]) continue;
      src.push(from[i]);
      dst.push(to[i]);
    }
    return new Graph(src, dst, numNodes);
  }

  private check(op: string): void {
    if (this.disposed) throw new Error(`${op}: the graph was disposed`);
  }

  /**
   * GCN's normalized adjacency D^-1/2 (A + I) D^-1/2 (Kipf & Welling), as weighted edges: a self
   * loop is added to every node that lacks one, and edge s -> d gets 1 / sqrt(deg(s) · deg(d))
   * with deg counting incoming edges (self loop included). Computed on first use, then cached.
   */
  gcnNorm(): WeightedEdges {
    this.check('Graph.gcnNorm');
    if (this.gcn !== null) return this.gcn;
    const n = this.numNodes;
    const hasLoop = new Uint8Array(n);
    for (let e = 0; e < this.numEdges; e++) if (this.hostSrc[e] === this.hostDst[e]) hasLoop[this.hostSrc[e]] = 1;
    const missing = n - hasLoop.reduce((s, v) => s + v, 0);
    const src = new Int32Array(this.numEdges + missing);
    const dst = new Int32Array(this.numEdges + missing);
    src.set(this.hostSrc);
    dst.set(this.hostDst);
    let k = this.numEdges;
    for (let i = 0; i < n; i++) if (!hasLoop[i]) (src[k] = i), (dst[k++] = i);
    const degree = new Float64Array(n);
    for (const d of dst) degree[d] += 1;
    const weight = new Float32Array(src.length);
    for (let e = 0; e < src.length; e++) weight[e] = 1 / Math.sqrt(degree[src[e]] * degree[dst[e]]);
    this.gcn = {
      src: keep(tensor(src, [src.length])),
      dst: keep(tensor(dst, [dst.length])),
      weight: keep(tensor(weight, [weight.length])),
    };
    return this.gcn;
  }

  /**
   * Per node, the sum / mean / max of its in-neighbours' rows of x (0 for a node with no
   * in-edges). Sum and mean run as one fused spmm (mean with cached 1/in-degree edge weights);
   * max gathers the messages and reduces them per node.
   * x: float32 [numNodes, ...features] -> [numNodes, ...features]
   */
  aggregate(x: Tensor, reducer: SegmentReducer = 'mean'): Tensor {
    this.check('Graph.aggregate');
    switch (reducer) {
      case 'sum':
        return spmm(x, this.src, this.dst, { numOut: this.numNodes });
      case 'mean':
        return spmm(x, this.src, this.dst, { weight: this.inverseInDegree(), numOut: this.numNodes });
      case 'max':
        return segmentReduce(gather(x, this.src, 0), this.dst, this.numNodes, 'max');
      default:
        throw new Error(`Graph.aggregate: reducer must be 'sum', 'mean' or 'max', got '${String(reducer)}'`);
    }
  }

  /** float32 [E]: 1 / in-degree of each edge's destination (cached). */
  private inverseInDegree(): Tensor {
    if (this.meanWeight === null) {
      const degree = this.inDegree();
      const w = Float32Array.from(this.hostDst, (d) => 1 / degree[d]);
      this.meanWeight = keep(tensor(w, [w.length]));
    }
    return this.meanWeight;
  }

  /** Throws unless x is [numNodes, features], naming the layer: node features must match the graph. */
  checkFeatures(layer: string, x: Tensor | SparseMatrix, features: number): void {
    this.check(layer);
    if (x.shape.length !== 2 || x.shape[0] !== this.numNodes || x.shape[1] !== features) {
      const got = x instanceof SparseMatrix ? `a SparseMatrix [${x.shape.join(', ')}]` : `${x.dtype} [${x.shape.join(', ')}]`;
      throw new Error(`${layer}: expected x [${this.numNodes}, ${features}] (one row per node of the graph), got ${got}`);
    }
  }

  /** In-degree of every node (edges entering it), on the host. [numNodes] */
  inDegree(): Int32Array {
    const degree = new Int32Array(this.numNodes);
    for (const d of this.hostDst) degree[d] += 1;
    return degree;
  }

  /** Frees the edge tensors and every cached normalization. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of [this.src, this.dst, this.gcn?.src, this.gcn?.dst, this.gcn?.weight, this.meanWeight]) t?.dispose();
    this.gcn = null;
    this.meanWeight = null;
  }
}
