// onnxruntime-node (bundled CPU binaries, MLAS kernels), 2 intra-op threads. The MatMul and Add
// models are built in memory (onnx-model.mjs); each call is one session.run.
import { createRequire } from 'node:module';
import { timeAsync } from '../timing.mjs';
import { assertClose, randomNormal, referenceMatmul } from './common.mjs';
import { binaryOpModel } from './onnx-model.mjs';

const THREADS = 2;
let ort;

const options = {
  executionProviders: ['cpu'],
  intraOpNumThreads: THREADS,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
};

async function session(opType, shapeA, shapeB, shapeY) {
  return ort.InferenceSession.create(binaryOpModel(opType, shapeA, shapeB, shapeY), options);
}

async function timeSession(s, a, b) {
  const feeds = { A: a, B: b };
  try {
    return await timeAsync(async () => {
      const out = await s.run(feeds);
      out.Y.dispose();
    });
  } finally {
    await s.release();
  }
}

export default {
  id: 'ort',
  column: 'onnxruntime',
  async init() {
    ort = createRequire(import.meta.url)('onnxruntime-node');
    // The hand-encoded models must load and compute the right thing.
    const [m, k, n] = [3, 4, 2];
    const a = randomNormal(m * k, 3);
    const b = randomNormal(k * n, 4);
    const mm = await session('MatMul', [m, k], [k, n], [m, n]);
    const y = (await mm.run({ A: new ort.Tensor('float32', a, [m, k]), B: new ort.Tensor('float32', b, [k, n]) })).Y;
    assertClose('onnxruntime MatMul check', y.data, referenceMatmul(a, b, m, k, n));
    if (y.dims.join() !== `${m},${n}`) throw new Error(`onnxruntime MatMul check: output dims ${y.dims}`);
    await mm.release();
    const add = await session('Add', [4], [4], [4]);
    const s = (await add.run({ A: new ort.Tensor('float32', [1, 2, 3, 4], [4]), B: new ort.Tensor('float32', [10, 20, 30, 40], [4]) })).Y;
    assertClose('onnxruntime Add check', s.data, [11, 22, 33, 44]);
    await add.release();
    return `onnxruntime-node ${ort.env.versions?.node ?? '?'} (CPU, intraOpNumThreads ${THREADS})`;
  },
  workloads: {
    async matmul({ n }) {
      const s = await session('MatMul', [n, n], [n, n], [n, n]);
      return timeSession(s, new ort.Tensor('float32', randomNormal(n * n, 1), [n, n]), new ort.Tensor('float32', randomNormal(n * n, 2), [n, n]));
    },
    async add({ size }) {
      const s = await session('Add', [size], [size], [size]);
      return timeSession(s, new ort.Tensor('float32', randomNormal(size, 5), [size]), new ort.Tensor('float32', randomNormal(size, 6), [size]));
    },
  },
  close() {},
};
