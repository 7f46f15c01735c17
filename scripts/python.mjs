// One Python environment for every script and test that needs a Python reference (numpy,
// safetensors, onnx, onnxruntime, tensorboard): a virtual environment kept with the other caches in
// ~/.cache/kiln/venv, so fresh clones (CI) reuse it and the system Python stays untouched.
// `ensurePython(['numpy', 'safetensors'])` installs what is missing and returns the interpreter's
// path; tests find it through KILN_PYTHON (set by scripts/test.mjs) or `pythonPath()`.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { run, step } from './lib.mjs';

export const VENV = process.env.KILN_VENV ?? join(homedir(), '.cache', 'kiln', 'venv');

/** The venv's interpreter (whether or not it exists yet). */
export function pythonPath() {
  return join(VENV, 'bin', 'python');
}

/** Import names differ from some PyPI names; `pip` is told the PyPI name, the probe imports the module. */
const IMPORT_NAME = { 'onnxruntime': 'onnxruntime', 'safetensors': 'safetensors', 'tensorboard': 'tensorboard', 'scikit-learn': 'sklearn', 'pillow': 'PIL' };

function importable(python, pkg) {
  const name = pkg.split(/[=<>~!\[]/)[0];
  const module = IMPORT_NAME[name] ?? name.replace(/-/g, '_');
  return spawnSync(python, ['-c', `import ${module}`], { stdio: 'ignore' }).status === 0;
}

/** Creates the venv if needed and pip-installs the packages it cannot import yet; returns the interpreter. */
export function ensurePython(packages) {
  const python = pythonPath();
  if (!existsSync(python)) {
    step(`creating the Python environment for reference tests (${VENV})`);
    run('python3', ['-m', 'venv', VENV]);
  }
  const missing = packages.filter((p) => !importable(python, p));
  if (missing.length > 0) {
    step(`installing Python packages into ${VENV}: ${missing.join(', ')} (pip, once)`);
    run(python, ['-m', 'pip', 'install', '--disable-pip-version-check', '--quiet', ...missing]);
  }
  return python;
}
