// `npm start`: set-up if needed, then the main demo.
import { setup } from './setup.mjs';
import { run, step } from './lib.mjs';

setup();
step('running examples/linear-regression.mjs');
run('node', ['examples/linear-regression.mjs']);
