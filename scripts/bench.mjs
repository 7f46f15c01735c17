// `npm run bench`: builds Kiln, installs the benchmark peers (bench/package.json) and numpy, then
// runs bench/run.mjs. Arguments after `--` go to run.mjs (e.g. `npm run bench -- --only matmul`).
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, run, step } from './lib.mjs';
import { ensurePython } from './python.mjs';
import { setup } from './setup.mjs';
import { buildFlopsProbe } from '../bench/flops-probe.mjs';
import { TORCH_VENV } from '../bench/peers/pytorch.mjs';

const BENCH = join(ROOT, 'bench');
const mtime = (p) => (existsSync(p) ? statSync(p).mtimeMs : 0);

// 1. Kiln itself (npm deps, native addon, dist/).
step('building Kiln (skipped when up to date)');
setup({ wasm: true });

// 1b. The f32 FMA peak probe (bench/flops-probe, a small Rust binary of its own). A failure only
//     drops the fma-peak row.
try {
  step('building bench/flops-probe (skipped when up to date)');
  buildFlopsProbe();
} catch (e) {
  step(`note: ${e.message}; the fma-peak row will fail`);
}

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

// 3b. PyTorch for the pytorch column, in a Python environment of its own (~/.cache/kiln/torch-venv,
//     bench only; npm test never uses it). The PyPI wheel is a CUDA build: without its nvidia-*
//     wheels `import torch` fails (it preloads libcublasLt), so it is installed with its
//     dependencies, about 5 GB on disk, once. A failure only drops the column.
/** Whether `--peers` (either spelling, as run.mjs reads it) leaves the library `name` in the run. */
function wantsPeer(name) {
  const argv = process.argv;
  const lists = argv.flatMap((a, i) => (a === '--peers' ? [argv[i + 1] ?? ''] : a.startsWith('--peers=') ? [a.slice(8)] : []));
  return lists.length === 0 || lists.join(',').split(',').some((p) => p.trim() && name.includes(p.trim()));
}
if (wantsPeer('pytorch') && !process.argv.includes('--onnx')) {
  const torchPython = join(TORCH_VENV, 'bin', 'python');
  const hasTorch = () => spawnSync(torchPython, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
  if (!existsSync(torchPython)) run('python3', ['-m', 'venv', TORCH_VENV]);
  if (hasTorch()) {
    step(`PyTorch is available (${TORCH_VENV})`);
  } else {
    step(`installing PyTorch into ${TORCH_VENV} (pip install torch numpy: the PyPI CUDA build with its nvidia-* wheels, ~5 GB, once)`);
    const r = spawnSync(torchPython, ['-m', 'pip', 'install', '--disable-pip-version-check', '--quiet', 'torch', 'numpy'], { stdio: 'inherit' });
    if (r.error || r.status !== 0 || !hasTorch()) step('note: could not install PyTorch; the pytorch column will be skipped');
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
