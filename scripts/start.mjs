// `npm start`: set-up if needed, then the main job (the MNIST pipeline); arguments pass through
// (e.g. `npm start -- --resume`).
import { setup } from './setup.mjs';
import { run, step } from './lib.mjs';

// The MNIST job runs on the CPU: a fresh clone builds the addon without the GPU backend (wgpu is
// most of a first build's time); an addon built with it is used as it is.
setup({ gpu: false });
step('running examples/mnist.mjs');
run('node', ['examples/mnist.mjs', ...process.argv.slice(2)]);
