// Kiln's WASM backend in Node: the same workload functions as the native peer (kiln.mjs), run
// with `kiln.setBackend('wasm')`, so every Kiln workload gets a WASM row without more code. The
// module is the relaxed-SIMD build when Node can compile it (ts/backends/wasm.ts), single-threaded
// (Node has the native backend for threads), which is also how tfjs-backend-wasm runs in Node.
// Its ratio column is kiln-wasm/tfjs-wasm (`ratioWith`): the two WASM libraries side by side.
import kilnNative from './kiln.mjs';

let kiln;

/**
 * The native peer's workloads left out here: fmaPeak and memoryRead are the machine's figures (bench/flops-probe),
 * listed once; the large-model steps would take minutes per step on one WASM thread.
 */
const NATIVE_ONLY = ['fmaPeak', 'memoryRead', 'resnet18Train', 'transformerTrain'];

/** Runs `fn` with the WASM backend selected, then restores the native one (after it settles). */
function onWasm(fn) {
  return function (params) {
    kiln.setBackend('wasm');
    let result;
    try {
      result = fn.call(this, params);
    } catch (e) {
      kiln.setBackend('native');
      throw e;
    }
    if (typeof result?.then !== 'function') {
      kiln.setBackend('native');
      return result;
    }
    return result.finally(() => kiln.setBackend('native'));
  };
}

export default {
  id: 'kiln-wasm',
  column: 'kiln-wasm',
  ratioWith: ['tfjs-wasm'],
  async init() {
    kiln = await import('../../dist/index.js');
    // The native peer's matmul and add checks, on the WASM backend (with a `this` of its own, so
    // the native peer's info is left alone).
    await onWasm(() => kilnNative.init.call({}))();
    kiln.setBackend('wasm');
    try {
      this.info = { simdLevel: kiln.simdLevel(), numThreads: kiln.numThreads() };
    } finally {
      kiln.setBackend('native');
    }
    return `Kiln WASM backend in Node (wasm-bindgen, ${this.info.simdLevel}, ${this.info.numThreads} thread)`;
  },
  workloads: Object.fromEntries(Object.entries(kilnNative.workloads).filter(([kind]) => !NATIVE_ONLY.includes(kind)).map(([kind, fn]) => [kind, onWasm(fn)])),
  close() {
    kiln.setBackend('wasm');
    try {
      const live = kiln.memory().numTensors;
      if (live !== 0) console.warn(`  note: ${live} Kiln WASM tensors still alive after the benchmarks`);
    } finally {
      kiln.setBackend('native');
    }
  },
};
