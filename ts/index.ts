/**
 * Kiln: deep learning for TypeScript with Rust kernels.
 *
 *   import * as kiln from 'kiln-ml';
 *   const y = kiln.tidy(() => kiln.tensor([[1, 2], [3, 4]]).matmul(kiln.eye(2)).relu());
 */

import './backends/node.js'; // registers the native (default) and wasm backends
import { registerDashboard } from './train/dashboard/hook.js';
import { Dashboard } from './train/dashboard/server.js';

// fit's `dashboard: true` serves the live view over HTTP in Node.
registerDashboard((options) => new Dashboard(options));

export * from './core-api.js';
export * as train from './train/index.js';
export { fit, evaluate, predict } from './train/index.js';
export * as io from './io/index.js';
export { saveModel, loadModel, saveCheckpoint, loadCheckpoint } from './io/index.js';
export * as data from './data/index.js';
// self-supervised learning: contrastive (SimCLR) and masked-autoencoder pre-training, linear probes
export * as ssl from './ssl/index.js';
// MPI collectives and data parallelism (needs the kiln-mpi.node build; docs/distributed.md)
export * as distributed from './distributed/index.js';
// image output (PNG grids); the browser entry gets the part without files
export * as viz from './viz/index.js';
export * as onnx from './onnx/index.js';
