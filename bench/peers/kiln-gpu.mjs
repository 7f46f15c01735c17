// Kiln's GPU backend (kiln-gpu through the native addon) on the GPU wgpu finds. The rows are
// labelled with the adapter's name: on lavapipe (Mesa's CPU Vulkan driver, the only "GPU" on the
// reference machine) they show that the kernels run and what dispatch costs, not GPU speed.
//
// GPU ops return when queued, so every timed call ends by waiting for the device
// (kiln.synchronize) or by reading a result, as the native peer's training steps do.
import { timeSync } from '../timing.mjs';
import { randomNormal } from './common.mjs';
import kilnNative from './kiln.mjs';

let kiln;

/** Runs `fn` with the GPU backend selected, then restores the native one. */
function onGpu(fn) {
  return function (params) {
    kiln.setBackend('gpu');
    try {
      return fn.call(this, params);
    } finally {
      kiln.setBackend('native');
    }
  };
}

/** `op()` timed to completion on the device. */
function timeOnDevice(op) {
  return timeSync(() => {
    const out = op();
    kiln.synchronize();
    out.dispose();
  });
}

export default {
  id: 'kiln-gpu',
  column: 'kiln-gpu',
  async init() {
    kiln = await import('../../dist/index.js');
    const info = kiln.gpuInfo(); // throws (peer skipped) without an adapter
    await onGpu(() => kilnNative.init.call({}))();
    this.info = info;
    // The column names the adapter: 'kiln-gpu llvmpipe' on the CPU driver, never a bare 'gpu'.
    this.column = `kiln-gpu ${info.adapter.split(/[ (]/)[0]}`;
    const caveat = info.software ? '; a software driver: correctness and dispatch overhead only, not GPU speed' : '';
    return `Kiln GPU backend on '${info.adapter}' (${info.backend}, ${info.driverInfo || info.driver}${caveat})`;
  },
  workloads: {
    matmul: onGpu(({ n }) => {
      const [a, b] = [kiln.randn([n, n]), kiln.randn([n, n])];
      try {
        return timeOnDevice(() => kiln.matmul(a, b));
      } finally {
        kiln.dispose([a, b]);
      }
    }),
    add: onGpu(({ size }) => {
      const [a, b] = [kiln.tensor(randomNormal(size, 5)), kiln.tensor(randomNormal(size, 6))];
      try {
        return timeOnDevice(() => kiln.add(a, b));
      } finally {
        kiln.dispose([a, b]);
      }
    }),
    // The training steps read their loss back each step, so they already end on the device.
    mlpTrain: onGpu(kilnNative.workloads.mlpTrain),
    cnnTrain: onGpu(kilnNative.workloads.cnnTrain),
    lstmTrain: onGpu(kilnNative.workloads.lstmTrain),
  },
  close() {
    const live = kiln?.memory().numTensors ?? 0;
    if (live !== 0) console.warn(`  note: ${live} Kiln tensors still alive after the benchmarks`);
  },
};
