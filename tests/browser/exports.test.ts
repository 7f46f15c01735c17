/**
 * The browser entry (dist-web/kiln.js, built by scripts/build-web.mjs) exports the Node entry's
 * API minus the parts that need a file system, plus what only a page needs. Both lists are
 * written out below and in docs/browser.md; a name added to the Node entry must either reach the
 * browser bundle or be added to the file-system list on purpose.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { buildWeb, ROOT } from './chromium.js';

/** Node-entry names that read or write files (`namespace.name` inside a namespace). */
const FILE_SYSTEM_ONLY = [
  'saveCheckpoint', 'loadCheckpoint',
  'io.writeFileAtomic', 'io.saveTensors', 'io.loadTensors',
  'io.loadPyTorchWeights', 'io.savePyTorchWeights', 'io.loadShardedTensors', 'io.saveShardedTensors', 'io.HF_INDEX_FILE', 'io.HF_WEIGHTS_FILE',
  'io.saveCheckpoint', 'io.loadCheckpoint', 'io.disposeCheckpoint', 'io.CHECKPOINT_FORMAT_VERSION',
  'data.readIdx', 'data.loadMnist', 'data.loadCora',
  'train.MetricsLogger', 'train.saveLearningCurves', 'train.ModelCheckpoint', 'train.resume',
  'train.TensorBoard', 'train.SummaryWriter', 'train.Dashboard',
  'viz.savePng', 'viz.saveImageGrid',
];

/** Node-entry namespaces that need Node as a whole: MPI runs in processes that mpirun starts. */
const NODE_ONLY_NAMESPACES = ['distributed'];
const inNodeOnlyNamespace = (n: string): boolean => NODE_ONLY_NAMESPACES.some((ns) => n === ns || n.startsWith(`${ns}.`));

/** Browser-entry names the Node entry has no use for (loading the WASM module in a page). */
const BROWSER_ONLY = ['init', 'wasmVariant', 'wasmMemoryBytes', 'wasmThreadStats', 'setNumThreads', 'PageDashboard', 'mountDashboard'];

/** Top-level export names, and `namespace.name` for the members of each namespace object. */
function exportNames(module: Record<string, unknown>): string[] {
  const names: string[] = [];
  for (const [key, value] of Object.entries(module)) {
    names.push(key);
    if (typeof value === 'object' && value !== null) for (const inner of Object.keys(value)) names.push(`${key}.${inner}`);
  }
  return names.sort();
}

describe('the browser entry', () => {
  let browserNames: string[] = [];

  beforeAll(() => {
    buildWeb();
    // A separate Node process: the bundle carries its own engine, which must not meet this one's.
    const script = `const m = await import(${JSON.stringify(join(ROOT, 'dist-web', 'kiln.js'))});
      const names = [];
      for (const [k, v] of Object.entries(m)) { names.push(k); if (typeof v === 'object' && v !== null) for (const i of Object.keys(v)) names.push(k + '.' + i); }
      console.log(JSON.stringify(names));`;
    const listed = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    if (listed.status !== 0) throw new Error(`importing dist-web/kiln.js in Node failed:\n${listed.stderr}`);
    browserNames = (JSON.parse(listed.stdout) as string[]).sort();
  }, 120_000);

  it('exports the Node API minus the documented file-system list, plus the WASM loader', () => {
    const nodeNames = exportNames(kiln as unknown as Record<string, unknown>);
    expect(nodeNames.length).toBeGreaterThan(200);
    // Every listed name exists in the Node entry, so the list cannot go stale unnoticed.
    expect(FILE_SYSTEM_ONLY.filter((n) => !nodeNames.includes(n))).toEqual([]);
    const expected = [...nodeNames.filter((n) => !FILE_SYSTEM_ONLY.includes(n) && !inNodeOnlyNamespace(n)), ...BROWSER_ONLY].sort();
    expect({ missingInBrowser: expected.filter((n) => !browserNames.includes(n)), extraInBrowser: browserNames.filter((n) => !expected.includes(n)) }).toEqual({
      missingInBrowser: [],
      extraInBrowser: [],
    });
    for (const ns of ['data', 'train', 'io']) expect(browserNames.filter((n) => n.startsWith(`${ns}.`)).length).toBeGreaterThan(5);
    expect(browserNames).toEqual(expect.arrayContaining(['saveModel', 'loadModel', 'fit', 'train.EarlyStopping', 'data.DataLoader', 'data.CharTokenizer']));
  });

  it('has the file-system list written in docs/browser.md', () => {
    const doc = readFileSync(join(ROOT, 'docs', 'browser.md'), 'utf8');
    expect(FILE_SYSTEM_ONLY.filter((n) => !doc.includes(`\`${n}\``))).toEqual([]);
  });

  it('pulls no Node module into the bundle', () => {
    const bundle = readFileSync(join(ROOT, 'dist-web', 'kiln.js'), 'utf8');
    expect(bundle.match(/from\s*["']node:[a-z_]+["']|require\(["']node:/g) ?? []).toEqual([]);
  });
});
