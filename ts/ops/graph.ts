/**
 * Message passing over an edge list, the two kernels graph layers are built from (see
 * crates/kiln-core/src/ops/graph.rs): `spmm`, a sparse adjacency times a dense node matrix, and
 * `segmentReduce`, a sum / mean / max of rows grouped by id. Both differentiate.
 *
 * An edge list is two int32 [E] tensors, `src` and `dst` (PyTorch Geometric's edge_index rows):
 * edge e carries a message from node src[e] to node dst[e].
 */

import { backend } from '../engine.js';
import { wrap, type Tensor } from '../tensor.js';
import { handleOf } from './util.js';

/** Options of `spmm`: edge weights and the output's row count. */
export interface SpmmOptions {
  /** float32 [E]: the weight of each edge (default 1). Receives a gradient if it requires one. */
  weight?: Tensor;
  /** Rows of the output (default x.shape[0]: a square adjacency). */
  numOut?: number;
}

function count(op: string, what: string, n: number): number {
  if (!Number.isInteger(n) || n < 0) throw new Error(`${op}: ${what} must be a non-negative integer, got ${n}`);
  return n;
}

/**
 * Sparse (COO) adjacency times dense: out[dst[e]] += weight[e] · x[src[e]], i.e. A·x with
 * A[d, s] the summed weight of the edges s -> d. Fused: no [E, F] message tensor is made.
 * x: float32 [N, ...features], src, dst: int32 [E] -> [numOut, ...features]
 */
export function spmm(x: Tensor, src: Tensor, dst: Tensor, options: SpmmOptions = {}): Tensor {
  const b = backend();
  const xh = handleOf(x, 'spmm', b);
  const numOut = count('spmm', 'numOut', options.numOut ?? x.shape[0] ?? 0);
  const weight = options.weight === undefined ? -1 : handleOf(options.weight, 'spmm', b, 'weight');
  return wrap(b.impl.spmm(xh, handleOf(src, 'spmm', b, 'src'), handleOf(dst, 'spmm', b, 'dst'), weight, numOut), b);
}

/** How segmentReduce combines the rows of one segment. */
export type SegmentReducer = 'sum' | 'mean' | 'max';

/**
 * Reduces the rows of `values` that share a segment id (ids in any order); a segment with no
 * rows gives 0. Max sends its gradient to the first row holding the maximum.
 * values: float32 [E, ...features], segmentIds: int32 [E] in [0, numSegments)
 * -> [numSegments, ...features]
 */
export function segmentReduce(values: Tensor, segmentIds: Tensor, numSegments: number, reducer: SegmentReducer = 'sum'): Tensor {
  const b = backend();
  const code = b.codes.segmentReduce?.[reducer];
  if (code === undefined) throw new Error(`segmentReduce: reducer must be 'sum', 'mean' or 'max', got '${String(reducer)}'`);
  const n = count('segmentReduce', 'numSegments', numSegments);
  return wrap(b.impl.segmentReduce(code, handleOf(values, 'segmentReduce', b, 'values'), handleOf(segmentIds, 'segmentReduce', b, 'segmentIds'), n), b);
}
