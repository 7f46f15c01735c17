// @tensorflow/tfjs-backend-wasm: XNNPACK compiled to WebAssembly with SIMD. Its .wasm files load
// from node_modules; in Node it runs single-threaded (the threaded build is for browsers only).
import * as tf from '@tensorflow/tfjs-core';
import { tfjsPeer } from './tfjs.mjs';

export default tfjsPeer({
  id: 'tfjs-wasm',
  column: 'tfjs-wasm 1thr',
  backend: 'wasm',
  pkg: '@tensorflow/tfjs-backend-wasm',
  describe: async (v) => {
    const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) ? 'SIMD' : 'no SIMD';
    const threads = (await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')) ? 'multi-threaded' : 'single-threaded in Node';
    return `@tensorflow/tfjs-backend-wasm ${v} (XNNPACK, ${simd}, ${threads})`;
  },
});
