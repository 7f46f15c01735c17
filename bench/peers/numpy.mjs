// numpy (with its bundled OpenBLAS) in a python3 subprocess, 2 BLAS threads: the practical CPU
// ceiling for matmul. The tiny-op row is a Python loop of np.add calls, so it includes the
// interpreter's per-call cost. Each workload runs in its own python3 process (numpy_bench.py).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { REPEATS, TARGET } from '../timing.mjs';

const THREADS = '2';
const SCRIPT = fileURLToPath(new URL('./numpy_bench.py', import.meta.url));
const PYTHON = process.env.PYTHON ?? 'python3';
const env = { ...process.env, OPENBLAS_NUM_THREADS: THREADS, OMP_NUM_THREADS: THREADS, MKL_NUM_THREADS: THREADS };

function python(arg) {
  const r = spawnSync(PYTHON, [SCRIPT, arg], { env, encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw new Error(`could not run ${PYTHON}: ${r.error.message}`);
  if (r.status !== 0) {
    const last = (r.stderr || '').trim().split('\n').pop();
    throw new Error(last || `${PYTHON} exited with ${r.status}`);
  }
  const out = JSON.parse(r.stdout.trim().split('\n').pop());
  if (out.error) throw new Error(out.error);
  return out;
}

const run = (kind) => (params) => python(JSON.stringify({ kind, params, target: TARGET, repeats: REPEATS })).seconds;

export default {
  id: 'numpy',
  column: 'numpy (python)',
  init() {
    const i = python('--info');
    this.info = i;
    return `numpy ${i.numpy} / ${i.blas} via python ${i.python} subprocess, ${THREADS} threads; the add row is a Python loop of np.add`;
  },
  /** Shown under the table for these workload kinds (their cells get a marker). */
  notes: { add: "numpy add is a Python loop of np.add calls: it includes the interpreter's per-call cost" },
  workloads: {
    matmul: run('matmul'),
    add: run('add'),
  },
  close() {},
};
