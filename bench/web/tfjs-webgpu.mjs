// What bench/web/webgpu.js needs of TensorFlow.js, bundled into one ES module by
// scripts/bench-web.mjs (esbuild): tfjs-core's ESM bundle registers no gradients, so the training
// step needs register_all_gradients from the same copy of tfjs-core, then the WebGPU backend.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import '@tensorflow/tfjs-backend-webgpu';

export { tf };
