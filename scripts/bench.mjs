// `npm run bench`: builds Kiln, installs the benchmark peers (bench/package.json) and numpy, then
// runs bench/run.mjs. Arguments after `--` go to run.mjs (e.g. `npm run bench -- --only matmul`).
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, run, step } from './lib.mjs';
import { ensurePython } from './python.mjs';
import { setup } from './setup.mjs';

const BENCH = join(ROOT, 'bench');
const mtime = (p) => (existsSync(p) ? statSync(p).mtimeMs : 0);

// 1. Kiln itself (npm deps, native addon, dist/).
step('building Kiln (skipped when up to date)');
setup({ wasm: true });

// 2. The peer libraries, installed in bench/ only. onnxruntime-node's install script would fetch
//    CUDA libraries; ONNXRUNTIME_NODE_INSTALL=skip keeps its bundled CPU binaries only.
if (mtime(join(BENCH, 'node_modules', '.package-lock.json')) < mtime(join(BENCH, 'package-lock.json'))) {
  step('installing the benchmark peers in bench/ (npm ci, ONNXRUNTIME_NODE_INSTALL=skip)');
  run('npm', ['ci', '--no-audit', '--no-fund'], { cwd: BENCH, env: { ONNXRUNTIME_NODE_INSTALL: 'skip' } });
} else {
  step('benchmark peers already installed in bench/node_modules');
}

// 3. numpy for the CPU-ceiling column. A failure only drops that column.
const python = process.env.PYTHON ?? 'python3';
const hasNumpy = () => spawnSync(python, ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;
if (hasNumpy()) {
  step(`numpy is available (${python})`);
} else {
  step(`numpy is missing: ${python} -m pip install numpy`);
  const r = spawnSync(python, ['-m', 'pip', 'install', '--disable-pip-version-check', 'numpy'], { stdio: 'inherit' });
  if (r.error || r.status !== 0 || !hasNumpy()) {
    step('note: could not install numpy; the numpy column will be skipped');
  }
}

// 4. The benchmarks: bench/run.mjs, or with --onnx the ONNX model latencies (bench/onnx-models.mjs,
//    which needs the onnx wheel of Kiln's Python environment).
const onnx = process.argv.includes('--onnx');
if (onnx) ensurePython(['numpy', 'onnx']);
const script = onnx ? 'onnx-models.mjs' : 'run.mjs';
const args = process.argv.slice(2).filter((a) => a !== '--onnx');
step(`running bench/${script} ${args.join(' ')}`.trim());
const r = spawnSync(process.execPath, ['--expose-gc', join(BENCH, script), ...args], { stdio: 'inherit', cwd: ROOT });
if (r.signal) {
  // A SIGBUS/SIGSEGV here usually means kiln.node was rebuilt (overwritten) while the run was using it.
  console.error(`[kiln] bench/${script} was killed by ${r.signal}${r.signal === 'SIGBUS' || r.signal === 'SIGSEGV' ? ' (was the native addon rebuilt during the run? run it again)' : ''}`);
  process.exit(1);
}
if (r.status !== 0) process.exit(r.status ?? 1);
