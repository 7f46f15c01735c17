/**
 * SparseMatrix: a 2-D matrix stored as its non-zero entries (COO: row, column, value), multiplied
 * with dense matrices by the fused spmm kernel, with gradients for the dense side and for the
 * values. For inputs that are mostly zeros, such as bag-of-words node features (Cora: 1.3% of
 * 2,708 x 1,433 entries), where a dense product would spend 98% of its work on zeros.
 *
 *   const features = kiln.SparseMatrix.fromDense(bagOfWords, [2708, 1433]);
 *   const h = features.matmul(w);                 // [2708, 1433] x [1433, 16] -> [2708, 16]
 */

import { keep } from '../engine.js';
import type { Tensor } from '../tensor.js';
import { randu, tensor } from './creation.js';
import { spmm } from './graph.js';

/** A sparse 2-D matrix in COO form (row, column, value), multiplied with dense matrices by the fused spmm kernel: [rows, cols] x [cols, n] -> [rows, n]. */
export class SparseMatrix {
  /** The number of stored entries. */
  readonly nnz: number;

  /**
   * rows, cols: int32 [nnz]; values: float32 [nnz]; shape: [numRows, numCols]. The matrix takes
   * ownership of the three tensors (they are kept; `dispose` frees them). `view` is internal: a
   * matrix that borrows rows and cols and leaves its values to the enclosing tidy (see dropout).
   */
  constructor(readonly rows: Tensor, readonly cols: Tensor, readonly values: Tensor, readonly shape: [number, number], private readonly view = false) {
    const nnz = values.shape[0];
    for (const [name, t, dtype] of [['rows', rows, 'int32'], ['cols', cols, 'int32'], ['values', values, 'float32']] as const) {
      if (t.dtype !== dtype || t.shape.length !== 1 || t.shape[0] !== nnz) {
        throw new Error(`SparseMatrix: ${name} must be ${dtype} [${nnz}] (one per stored entry), got ${t.dtype} [${t.shape.join(', ')}]`);
      }
    }
    if (shape.length !== 2 || !shape.every((d) => Number.isInteger(d) && d >= 0)) throw new Error(`SparseMatrix: shape must be [rows, cols], got [${shape.join(', ')}]`);
    this.nnz = nnz;
    if (!view) for (const t of [rows, cols, values]) keep(t);
  }

  /** The non-zero entries of a dense row-major [rows, cols] array. */
  static fromDense(data: ArrayLike<number>, shape: [number, number]): SparseMatrix {
    const [r, c] = shape;
    if (data.length !== r * c) throw new Error(`SparseMatrix.fromDense: ${data.length} values do not fill [${r}, ${c}]`);
    const rows: number[] = [];
    const cols: number[] = [];
    const values: number[] = [];
    for (let i = 0; i < data.length; i++) {
      if (data[i] !== 0) rows.push(Math.floor(i / c)), cols.push(i % c), values.push(data[i]);
    }
    const n = values.length;
    return new SparseMatrix(tensor(Int32Array.from(rows), [n]), tensor(Int32Array.from(cols), [n]), tensor(Float32Array.from(values), [n]), [r, c]);
  }

  /**
   * This matrix times a dense one: [rows, cols] x [cols, ...f] -> [rows, ...f]. Differentiable in
   * `dense` and in the values. Out-of-range entries and shape mismatches are reported by spmm.
   */
  matmul(dense: Tensor): Tensor {
    if (dense.shape[0] !== this.shape[1]) {
      throw new Error(`SparseMatrix.matmul: [${this.shape.join(', ')}] x [${dense.shape.join(', ')}]: the dense matrix needs ${this.shape[1]} rows`);
    }
    return spmm(dense, this.cols, this.rows, { weight: this.values, numOut: this.shape[0] });
  }

  /**
   * Inverted dropout of the stored entries (zeros stay zero): each value is dropped with
   * probability p, survivors are scaled by 1/(1 - p). The result shares rows and cols with this
   * matrix and owns only its new values; dispose it (or let a tidy free the values) after use.
   */
  dropout(p: number): SparseMatrix {
    if (!(p >= 0 && p < 1)) throw new Error(`SparseMatrix.dropout: p must be in [0, 1), got ${p}`);
    const values = p === 0 ? this.values.mul(1) : this.values.mul(randu([this.nnz]).less(1 - p).cast('float32').mul(1 / (1 - p)));
    return new SparseMatrix(this.rows, this.cols, values, this.shape, true);
  }

  /** Frees the stored entries (a view made by dropout: only its values). */
  dispose(): void {
    if (!this.view) {
      this.rows.dispose();
      this.cols.dispose();
    }
    this.values.dispose();
  }
}
