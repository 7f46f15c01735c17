/**
 * tfjs-core on its pure-JS cpu backend, the independent reference for ops tfjs has. `tfEval`
 * runs a tfjs expression and returns plain data, disposing every tfjs tensor it made.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type { ND } from './reference.js';

// The cpu backend prints a "use tfjs-node" banner on first use in Node; keep test output clean.
const warn = console.warn;
console.warn = () => {};
try {
  await tf.setBackend('cpu');
  tf.tidy(() => tf.scalar(0).dataSync());
} finally {
  console.warn = warn;
}

export { tf };

/** Runs a tfjs computation and returns its shape and values. */
export function tfEval(fn: () => tf.Tensor): ND & { dtype: string } {
  let out: ND & { dtype: string } = { shape: [], data: [], dtype: '' };
  tf.tidy(() => {
    const t = fn();
    out = { shape: [...t.shape], data: Array.from(t.dataSync()), dtype: t.dtype };
  });
  return out;
}

/** A tfjs float32 tensor from a reference array. */
export function tfT(x: ND): tf.Tensor {
  return tf.tensor(Float32Array.from(x.data), x.shape, 'float32');
}

/** A tfjs int32 tensor from a reference array. */
export function tfTi(x: ND): tf.Tensor {
  return tf.tensor(Int32Array.from(x.data), x.shape, 'int32');
}
