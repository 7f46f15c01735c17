// TensorFlow.js (tfjs-core) on a given backend; tfjs-cpu.mjs and tfjs-wasm.mjs instantiate it.
// Both share one tfjs-core, so every workload selects its backend first.
import * as tf from '@tensorflow/tfjs-core';
import { createRequire } from 'node:module';
import { timeSync } from '../timing.mjs';
import { randomNormal } from './common.mjs';

// PROD: what a deployed app uses; also silences the "install tfjs-node" banner.
tf.env().set('PROD', true);

const require = createRequire(import.meta.url);
const versionOf = (pkg) => require(`${pkg}/package.json`).version;

export function tfjsPeer({ id, column, backend, pkg, describe }) {
  const use = async () => {
    if (tf.getBackend() !== backend && !(await tf.setBackend(backend))) throw new Error(`tf.setBackend('${backend}') failed`);
    await tf.ready();
  };
  return {
    id,
    column,
    async init() {
      await import(pkg); // registers the backend
      await use();
      const a = tf.tensor2d([1, 2, 3, 4], [2, 2]);
      const c = tf.matMul(a, a);
      const got = Array.from(c.dataSync());
      tf.dispose([a, c]);
      if (got.join() !== '7,10,15,22') throw new Error(`tfjs ${backend} matmul check gave ${got}`);
      return describe(versionOf(pkg));
    },
    workloads: {
      async matmul({ n }) {
        await use();
        const a = tf.tensor2d(randomNormal(n * n, 1), [n, n]);
        const b = tf.tensor2d(randomNormal(n * n, 2), [n, n]);
        try {
          return timeSync(() => tf.matMul(a, b).dispose());
        } finally {
          tf.dispose([a, b]);
        }
      },
      async add({ size }) {
        await use();
        const a = tf.tensor1d(randomNormal(size, 5));
        const b = tf.tensor1d(randomNormal(size, 6));
        try {
          return timeSync(() => tf.add(a, b).dispose());
        } finally {
          tf.dispose([a, b]);
        }
      },
    },
    close() {},
  };
}
