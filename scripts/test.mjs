// `npm test`: set-up if needed, then the Rust unit tests and the TypeScript suites.
import { setup } from './setup.mjs';
import { run, step } from './lib.mjs';

setup();
step('Rust tests (cargo test -p kiln-core)');
run('cargo', ['test', '--release', '-p', 'kiln-core', '--quiet']);
step('TypeScript tests (vitest)');
run('npx', ['vitest', 'run']);
