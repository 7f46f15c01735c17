// `npm test`: set-up if needed, then the Rust unit tests and the TypeScript suites, ending with
// one plain "N passed, N failed" line for the vitest count.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { setup } from './setup.mjs';
import { ROOT, run, step } from './lib.mjs';
import { ensureChromium } from './chromium.mjs';
import { ensureVulkanDriver, quietVulkanEnv } from './vulkan.mjs';
import { ensurePython } from './python.mjs';
import { buildMpiAddon, ensureMpi } from './build-mpi.mjs';
import { HOST_CARGO } from './build-addon.mjs';

setup({ wasm: true });
// tests/browser/ runs Kiln in a real browser; KILN_SKIP_BROWSER=1 skips it (and this install).
if (process.env.KILN_SKIP_BROWSER !== '1') ensureChromium();
// The 'gpu' backend runs on lavapipe (Mesa's CPU Vulkan) when the machine has no GPU driver.
ensureVulkanDriver();
// tests/distributed/ runs ranks under mpirun: Open MPI from apt, then the MPI build of the addon
// (kiln-mpi.node; scripts/build-mpi.mjs). The default install and `npm start` never need them.
ensureMpi();
buildMpiAddon();
// Python references in a venv in ~/.cache/kiln/venv (scripts/python.mjs): numpy + safetensors for
// the interop tests, ml_dtypes for the bfloat16 the dtype tests compare against, scikit-learn for
// the metrics, tensorboard and pillow to read back TensorBoard event files, onnx and onnxruntime
// for the ONNX conformance data and reference outputs.
const python = ensurePython(['numpy', 'safetensors', 'ml_dtypes', 'scikit-learn', 'tensorboard', 'pillow', 'onnx', 'onnxruntime']);
step('Rust tests (cargo test -p kiln-core -p kiln-registry -p kiln-boundary, cargo test -p kiln-gpu, the pool\'s wait counters)');
run('cargo', ['test', '--release', '-p', 'kiln-core', '-p', 'kiln-registry', '-p', 'kiln-boundary', '--quiet', ...HOST_CARGO.args], { env: HOST_CARGO.env });
run('cargo', ['test', '--release', '-p', 'kiln-gpu', '--quiet', ...HOST_CARGO.args], { env: { ...quietVulkanEnv(), ...HOST_CARGO.env } });
// The pool's wait counters exist only in the measurement build (feature `wait-stats`): their test
// compiles to nothing without it, so it runs here with the feature on.
run('cargo', ['test', '--release', '-p', 'kiln-core', '--features', 'wait-stats', '--test', 'native_pool_waits', '--quiet', ...HOST_CARGO.args], { env: HOST_CARGO.env });

// The shared suites run once per backend: the native addon, the WASM module and the GPU (wgpu
// through the addon; on lavapipe here, where the heavy learning runs are skipped: tests/backends.ts).
const backends = process.env.KILN_BACKENDS ?? 'native,wasm,gpu';
step(`TypeScript tests (vitest) on: ${backends}`);
const report = join(tmpdir(), `kiln-vitest-${process.pid}.json`);
const r = spawnSync('npx', ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile=${report}`, ...process.argv.slice(2)], {
  stdio: 'inherit',
  cwd: ROOT,
  env: { ...process.env, ...quietVulkanEnv(), KILN_BACKENDS: backends, KILN_PYTHON: python },
});
if (existsSync(report)) {
  const { numPassedTests, numFailedTests } = JSON.parse(readFileSync(report, 'utf8'));
  rmSync(report);
  console.log(`\nvitest: ${numPassedTests} passed, ${numFailedTests} failed`);
}
process.exit(r.status ?? 1);
