// The ONNX backend conformance cases (the `onnx` wheel's test data, and the per-node tests that
// scripts/onnx-node-data.py writes), run against a Kiln module: shared by `npm run
// onnx:conformance` (scripts/onnx-conformance.mjs, every case) and tests/onnx/conformance.test.ts
// (a fast subset, in `npm test`).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Where the node-test data is cached (generated once, never in the repository). */
export const NODE_DATA = join(homedir(), '.cache', 'kiln', 'onnx-node-data');

/** The wheel's test data directory (onnx/backend/test/data), located through the venv's Python. */
export function wheelDataDir(python) {
  const r = spawnSync(python, ['-c', 'import onnx, os; print(os.path.dirname(onnx.__file__))'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cannot locate the onnx package with ${python}: ${r.stderr}`);
  return join(r.stdout.trim(), 'backend', 'test', 'data');
}

/** Writes the node tests into NODE_DATA unless they are there; returns NODE_DATA/node. */
export function ensureNodeData(python, scriptsDir) {
  const dir = join(NODE_DATA, 'node');
  if (!existsSync(join(dir, 'skipped.json'))) {
    console.log(`[kiln] generating the ONNX node tests into ${NODE_DATA} (once, about 20 s)`);
    const r = spawnSync(python, [join(scriptsDir, 'onnx-node-data.py'), NODE_DATA], { stdio: ['ignore', 'inherit', 'ignore'] });
    if (r.status !== 0) throw new Error('scripts/onnx-node-data.py failed');
  }
  return dir;
}

/** The case directories of a model set (those holding a model.onnx), sorted. */
export function casesIn(dir) {
  return readdirSync(dir).filter((n) => existsSync(join(dir, n, 'model.onnx'))).sort().map((n) => join(dir, n));
}

/** The `light` models: light_<name>.onnx with light_<name>_output_0.pb. */
export function lightModels(dir) {
  return readdirSync(dir).filter((n) => n.endsWith('.onnx')).sort().map((n) => join(dir, n));
}

/** Messages of Kiln's deliberate refusals (see ts/onnx: node.fail(... 'is not supported'), tensors.ts). */
const REFUSALS = [/ (is|are) not supported/, /Kiln has no \w+ tensors/, /Kiln cannot read \w+ tensors/, /cannot cast to ONNX type/, /Kiln runs 1-D/];

const sameValue = (a, b, rtol, atol) => (Number.isNaN(a) && Number.isNaN(b)) || a === b || Math.abs(a - b) <= atol + rtol * Math.abs(b);

/** Compares a Kiln tensor with an expected TensorProto; returns '' or what differs. */
function compare(kiln, actual, expectedProto, name, rtol, atol) {
  const expected = kiln.onnx.tensorFromProto(expectedProto, `expected ${name}`);
  try {
    const want = [...expected.shape];
    const got = [...actual.shape];
    if (want.join() !== got.join()) return `${name}: shape [${got}] instead of [${want}]`;
    const a = actual.dataSync();
    const e = expected.dataSync();
    let worst = -1;
    for (let i = 0; i < e.length; i++) {
      if (!sameValue(Number(a[i]), Number(e[i]), rtol, atol) && (worst < 0 || Math.abs(a[i] - e[i]) > Math.abs(a[worst] - e[worst]))) worst = i;
    }
    return worst < 0 ? '' : `${name}: element ${worst} is ${a[worst]}, expected ${e[worst]} (rtol ${rtol}, atol ${atol})`;
  } finally {
    expected.dispose();
  }
}

/**
 * Runs one model on its inputs and compares every output. Returns { name, status: 'passed' |
 * 'failed' | 'unsupported', opTypes, unsupported, message }.
 */
export function runModel(kiln, modelPath, dataSets, { name, rtol = 1e-3, atol = 1e-7 } = {}) {
  const info = kiln.onnx.check(modelPath);
  const result = { name, opTypes: info.opTypes, unsupported: info.unsupported, opset: info.opset, message: '' };
  if (info.unsupported.length > 0) return { ...result, status: 'unsupported', message: `unsupported: ${info.unsupported.join(', ')}` };
  let model;
  try {
    model = kiln.onnx.load(modelPath);
    for (const { inputs, outputs } of dataSets) {
      const problem = kiln.tidy(() => {
        const feeds = {};
        model.inputNames.forEach((n, i) => (feeds[n] = inputs[i]()));
        const got = model.run(feeds);
        const problems = model.outputNames.map((n, i) => (outputs[i] === undefined ? '' : compare(kiln, got[n], outputs[i], n, rtol, atol))).filter(Boolean);
        return problems.join('; ');
      });
      if (problem !== '') return { ...result, status: 'failed', message: problem };
    }
    return { ...result, status: 'passed' };
  } catch (e) {
    const message = e.message.split('\n')[0];
    // A documented refusal (an attribute value, a mode or a dtype Kiln does not implement) is
    // 'unsupported'; anything else thrown is a failure.
    const refused = REFUSALS.some((r) => r.test(message));
    return { ...result, status: refused ? 'unsupported' : 'failed', message };
  } finally {
    model?.dispose();
  }
}

/** The data sets of a case directory: test_data_set_N/input_i.pb and output_i.pb. */
function dataSetsOf(kiln, caseDir) {
  return readdirSync(caseDir).filter((n) => n.startsWith('test_data_set_')).sort().map((d) => {
    const files = (prefix) => readdirSync(join(caseDir, d)).filter((f) => f.startsWith(prefix)).sort((a, b) => parseInt(a.slice(prefix.length)) - parseInt(b.slice(prefix.length)));
    const read = (f) => kiln.onnx.decodeTensor(readFileSync(join(caseDir, d, f)));
    return {
      inputs: files('input_').map((f) => () => kiln.onnx.tensorFromProto(read(f), f)),
      outputs: files('output_').map(read),
    };
  });
}

/** One case directory (model.onnx + test data sets; node tests also carry meta.json). */
export function runCase(kiln, caseDir) {
  const metaPath = join(caseDir, 'meta.json');
  const meta = existsSync(metaPath) ? JSON.parse(readFileSync(metaPath, 'utf8')) : {};
  const name = caseDir.split('/').pop();
  const r = runModel(kiln, join(caseDir, 'model.onnx'), dataSetsOf(kiln, caseDir), { name, rtol: meta.rtol, atol: meta.atol });
  return { ...r, op: meta.op };
}

/**
 * A `light` model: its input is arange(n)/n in the declared shape (dynamic dims 1), as onnx's
 * runner makes it, and light_<name>_output_0.pb is the reference output.
 */
export function runLight(kiln, modelPath, { rtol = 1e-3, atol = 1e-7 } = {}) {
  const name = modelPath.split('/').pop().replace(/\.onnx$/, '');
  const expected = kiln.onnx.decodeTensor(readFileSync(modelPath.replace(/\.onnx$/, '_output_0.pb')));
  const declared = kiln.onnx.check(modelPath).inputs[0];
  const shape = declared.shape.map((d) => (typeof d === 'number' ? d : 1));
  const n = shape.reduce((a, b) => a * b, 1);
  const data = Float32Array.from({ length: n }, (_, i) => i / n);
  return runModel(kiln, modelPath, [{ inputs: [() => kiln.tensor(data, shape)], outputs: [expected] }], { name, rtol, atol });
}
