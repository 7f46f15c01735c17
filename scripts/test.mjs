// `npm test`: set-up if needed, then the Rust unit tests and the TypeScript suites, ending with
// one plain "N passed, N failed" line for the vitest count.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { setup } from './setup.mjs';
import { ROOT, run, step } from './lib.mjs';

setup();
step('Rust tests (cargo test -p kiln-core)');
run('cargo', ['test', '--release', '-p', 'kiln-core', '--quiet']);

step('TypeScript tests (vitest)');
const report = join(tmpdir(), `kiln-vitest-${process.pid}.json`);
const r = spawnSync('npx', ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile=${report}`, ...process.argv.slice(2)], {
  stdio: 'inherit',
  cwd: ROOT,
});
if (existsSync(report)) {
  const { numPassedTests, numFailedTests } = JSON.parse(readFileSync(report, 'utf8'));
  rmSync(report);
  console.log(`\nvitest: ${numPassedTests} passed, ${numFailedTests} failed`);
}
process.exit(r.status ?? 1);
