// Kiln on its WASM backend (kiln-core compiled to wasm32 with SIMD128, single-threaded) in Node,
// from the repository's dist/. Only the workloads the WASM build is compared on. Each workload
// switches the backend to 'wasm' and back, so the native peer is never affected.
import { kilnLstmTrain } from './lstm.mjs';
import { kilnConv2d } from './kiln.mjs';
import { kilnCnnTrain } from './cnn.mjs';

let kiln;

/** Runs `fn` with the WASM backend active, restoring the previous backend after. */
async function onWasm(fn) {
  const previous = kiln.getBackend();
  kiln.setBackend('wasm');
  try {
    return fn();
  } finally {
    kiln.setBackend(previous);
  }
}

export default {
  id: 'kiln-wasm',
  column: 'kiln-wasm 1thr',
  async init() {
    kiln = await import('../../dist/index.js');
    const simd = await onWasm(() => kiln.simdLevel());
    return `Kiln WASM backend in Node (wasm-bindgen, ${simd}, single-threaded)`;
  },
  workloads: {
    // recurrent layers (RNN family)
    lstmTrain(params) {
      return onWasm(() => kilnLstmTrain(kiln, params));
    },
    // convolution (CNN family)
    conv2d(params) {
      return onWasm(() => kilnConv2d(kiln, params));
    },
    cnnTrain(params) {
      return onWasm(() => kilnCnnTrain(kiln, params));
    },
  },
  close() {},
};
