// `npm run onnx:conformance`: runs the ONNX backend test data from the `onnx` wheel (simple,
// pytorch-converted, pytorch-operator, light) and the per-node tests (generated once into
// ~/.cache/kiln/onnx-node-data) on Kiln, and prints per set: passed / failed / unsupported with
// the ops involved, then a per-op table of the node tests. Options: --backend=native|wasm|gpu,
// --sets=light,simple (a subset), --filter=REGEX (case names), --markdown=FILE (writes the tables for docs/onnx.md).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './lib.mjs';
import { setup } from './setup.mjs';
import { ensurePython } from './python.mjs';
import { casesIn, ensureNodeData, lightModels, runCase, runLight, wheelDataDir } from './onnx-conformance-lib.mjs';

const arg = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
setup();
const python = ensurePython(['numpy', 'onnx']);
const kiln = await import(join(ROOT, 'dist/index.js'));
const backend = arg('backend') ?? 'native';
kiln.setBackend(backend);
const data = wheelDataDir(python);
const sets = (arg('sets') ?? 'light,simple,pytorch-converted,pytorch-operator,node').split(',');

const lines = [];
const say = (line = '') => {
  console.log(line);
  lines.push(line);
};
say(`ONNX conformance on Kiln's '${backend}' backend (onnx test data from ${data})`);
const summary = [];
let nodeResults = [];
for (const set of sets) {
  const started = Date.now();
  const results = [];
  const cases = set === 'light' ? lightModels(join(data, 'light')) : set === 'node' ? casesIn(ensureNodeData(python, join(ROOT, 'scripts'))) : casesIn(join(data, set));
  const filter = arg('filter') === undefined ? undefined : new RegExp(arg('filter'));
  for (const c of cases.filter((c) => filter === undefined || filter.test(c.split('/').pop()))) {
    const r = set === 'light' ? runLight(kiln, c) : runCase(kiln, c);
    results.push(r);
    if (set !== 'node' || filter !== undefined) console.log(`  ${set}/${r.name}: ${r.status}${r.message ? ` (${r.message})` : ''}`);
  }
  if (set === 'node') nodeResults = results;
  const count = (s) => results.filter((r) => r.status === s).length;
  const failingOps = [...new Set(results.filter((r) => r.status === 'failed').flatMap((r) => r.opTypes))].sort();
  const missingOps = [...new Set(results.flatMap((r) => r.unsupported))].sort();
  summary.push({ set, total: results.length, passed: count('passed'), failed: count('failed'), unsupported: count('unsupported'), failingOps, missingOps, seconds: (Date.now() - started) / 1000, results });
}

say();
say('| set | cases | passed | failed | unsupported | pass rate |');
say('|---|---|---|---|---|---|');
for (const s of summary) say(`| ${s.set} | ${s.total} | ${s.passed} | ${s.failed} | ${s.unsupported} | ${((100 * s.passed) / Math.max(s.total, 1)).toFixed(1)}% |`);
for (const s of summary) {
  if (s.set === 'node') continue;
  const failed = s.results.filter((r) => r.status === 'failed');
  if (failed.length > 0) {
    say();
    say(`${s.set}, failed:`);
    for (const r of failed) say(`- ${r.name} [${r.opTypes.join(', ')}]: ${r.message}`);
  }
  if (s.missingOps.length > 0) say(`${s.set}, ops Kiln lacks: ${s.missingOps.join(', ')}`);
}

if (nodeResults.length > 0) {
  // Per op: the node tests of that op (its _expanded variants included).
  const byOp = new Map();
  for (const r of nodeResults) {
    const row = byOp.get(r.op) ?? { passed: 0, failed: 0, unsupported: 0, failures: [] };
    row[r.status] += 1;
    if (r.status === 'failed') row.failures.push(r.name);
    byOp.set(r.op, row);
  }
  say();
  say('| op | node tests | passed | failed | unsupported | failing tests |');
  say('|---|---|---|---|---|---|');
  for (const [op, row] of [...byOp].sort(([a], [b]) => a.localeCompare(b))) {
    const total = row.passed + row.failed + row.unsupported;
    const shown = row.failures.slice(0, 4).join(', ') + (row.failures.length > 4 ? `, +${row.failures.length - 4}` : '');
    say(`| ${op} | ${total} | ${row.passed} | ${row.failed} | ${row.unsupported} | ${shown} |`);
  }
}
const file = arg('markdown');
if (file) writeFileSync(file, lines.join('\n') + '\n');
