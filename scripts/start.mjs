// `npm start`: set-up if needed, then the main job (the MNIST pipeline); arguments pass through
// (e.g. `npm start -- --resume`).
import { setup } from './setup.mjs';
import { run, step } from './lib.mjs';

setup();
step('running examples/mnist.mjs');
run('node', ['examples/mnist.mjs', ...process.argv.slice(2)]);
