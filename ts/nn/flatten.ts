/** Flatten: merges a range of dims into one (a view when the input is contiguous). */

import type { Tensor } from '../tensor.js';
import { Module } from './module.js';

export class Flatten extends Module {
  /** Merges dims startDim..endDim inclusive (negative counts from the end); defaults keep the batch dim. */
  constructor(readonly startDim = 1, readonly endDim = -1) {
    super();
  }

  /** [batch, d1, d2, ...] -> [batch, d1·d2·...] (with the default dims). */
  forward(x: Tensor): Tensor {
    const r = x.rank;
    const start = this.startDim < 0 ? this.startDim + r : this.startDim;
    const end = this.endDim < 0 ? this.endDim + r : this.endDim;
    if (r === 0) return x.reshape([1]);
    if (start < 0 || end >= r || start > end) {
      throw new Error(`Flatten(startDim ${this.startDim}, endDim ${this.endDim}): invalid for input ${x.dtype} [${x.shape.join(', ')}]`);
    }
    const merged = x.shape.slice(start, end + 1).reduce((a, b) => a * b, 1);
    return x.reshape([...x.shape.slice(0, start), merged, ...x.shape.slice(end + 1)]);
  }
}
