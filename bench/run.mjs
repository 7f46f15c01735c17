// Side-by-side benchmarks: Kiln against other libraries on the same workloads, in one run.
// Normally started by `npm run bench` (scripts/bench.mjs), which builds Kiln and installs the peers
// first. Options: --only matmul,add (workload id or kind substrings), --peers kiln,numpy.
//
// Prints a table (one row per workload, a column per library, then Kiln/peer ratios) and writes
// bench/results/latest.json.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REPEATS, TARGET } from './timing.mjs';
import { selectWorkloads } from './workloads.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));

/** Peer modules in table order; Kiln first (the ratios are Kiln / peer). */
const PEERS = ['kiln', 'tfjs-cpu', 'tfjs-wasm', 'onnxruntime', 'numpy'];

function listArg(name) {
  const out = [];
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === name && i + 1 < argv.length) out.push(...argv[++i].split(','));
    else if (argv[i].startsWith(`${name}=`)) out.push(...argv[i].slice(name.length + 1).split(','));
  }
  return out.map((s) => s.trim()).filter(Boolean);
}

const only = listArg('--only');
const peerFilter = listArg('--peers');
const workloads = selectWorkloads(only);
if (workloads.length === 0) {
  console.error(`bench: no workload matches --only ${only.join(',')}`);
  process.exit(1);
}

function cpuModel() {
  try {
    const m = readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m);
    return m ? m[1].trim() : 'unknown';
  } catch {
    return 'unknown';
  }
}

const fmtNumber = (v) => {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1e9) return `${(v / 1e9).toPrecision(3)}G`;
  if (a >= 1e6) return `${(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${(v / 1e3).toPrecision(3)}k`;
  if (a >= 100) return v.toFixed(0);
  return v.toPrecision(3);
};
const fmtRatio = (r) => (r >= 10 ? `${r.toFixed(0)}x` : r >= 0.1 ? `${r.toFixed(2).replace(/0$/, '')}x` : `${r.toPrecision(2)}x`);

// ---- peers -----------------------------------------------------------------------------------

const peers = [];
const skipped = [];
console.log('Libraries:');
for (const name of PEERS) {
  if (peerFilter.length && !peerFilter.some((p) => name.includes(p))) continue;
  let peer;
  try {
    peer = (await import(`./peers/${name}.mjs`)).default;
    peer.description = await peer.init();
    peers.push(peer);
    console.log(`  ${peer.id.padEnd(10)} ${peer.description}`);
  } catch (e) {
    const reason = e?.message?.split('\n')[0] ?? String(e);
    skipped.push({ library: peer?.id ?? name, reason });
    console.log(`  ${(peer?.id ?? name).padEnd(10)} SKIPPED: ${reason}`);
  }
}
if (peers.length === 0) {
  console.error('bench: no library could be loaded');
  process.exit(1);
}
const kiln = peers.find((p) => p.id === 'kiln');

// ---- measurements --------------------------------------------------------------------------

console.log(`\nMeasuring (best of ${REPEATS} runs of ~${TARGET} s each, after a warm-up):`);
const started = performance.now();
const results = []; // { workload, library, value, unit }
const errors = [];
for (const w of workloads) {
  for (const peer of peers) {
    const fn = peer.workloads[w.kind];
    if (!fn) continue;
    const t0 = performance.now();
    try {
      const seconds = await fn.call(peer, w.params);
      const value = w.value(seconds);
      results.push({ workload: w.id, library: peer.id, value, unit: w.unit });
      console.log(`  ${w.label.padEnd(24)} ${peer.id.padEnd(10)} ${`${fmtNumber(value)} ${w.unit}`.padStart(16)}   (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    } catch (e) {
      const reason = e?.message?.split('\n')[0] ?? String(e);
      errors.push({ workload: w.id, library: peer.id, reason });
      console.log(`  ${w.label.padEnd(24)} ${peer.id.padEnd(10)} FAILED: ${reason}`);
    }
  }
}
for (const peer of peers) await peer.close?.();
const elapsed = (performance.now() - started) / 1000;

// ---- table ---------------------------------------------------------------------------------

const get = (w, lib) => results.find((r) => r.workload === w.id && r.library === lib)?.value;
const others = peers.filter((p) => p !== kiln);
const header = ['workload', ...peers.map((p) => p.column), ...(kiln ? others.map((p) => `kiln/${p.id}`) : [])];
const rows = workloads.map((w) => [
  w.label,
  ...peers.map((p) => {
    const v = get(w, p.id);
    if (v !== undefined) return `${p.notes?.[w.kind] ? '*' : ''}${fmtNumber(v)} ${w.unit}`;
    return errors.some((e) => e.workload === w.id && e.library === p.id) ? 'failed' : '-';
  }),
  ...(kiln
    ? others.map((p) => {
        const k = get(w, 'kiln');
        const v = get(w, p.id);
        return k !== undefined && v !== undefined ? fmtRatio(k / v) : '-';
      })
    : []),
]);
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
console.log(`\nResults (higher is better; kiln/X > 1 means Kiln is faster), ${elapsed.toFixed(0)} s:\n`);
console.log(line(header));
console.log(widths.map((w) => '-'.repeat(w)).join('  '));
for (const r of rows) console.log(line(r));
console.log('');
for (const p of peers) console.log(`  ${p.column}: ${p.description}`);
for (const p of peers) for (const [kind, note] of Object.entries(p.notes ?? {})) if (workloads.some((w) => w.kind === kind)) console.log(`  * ${note}`);
for (const s of skipped) console.log(`  ${s.library}: skipped (${s.reason})`);
for (const e of errors) console.log(`  ${e.library} on ${e.workload}: failed (${e.reason})`);

// ---- results file --------------------------------------------------------------------------

const out = {
  header: {
    date: new Date().toISOString(),
    cpu: cpuModel(),
    nproc: availableParallelism(),
    node: process.version,
    kilnSimdLevel: kiln?.info?.simdLevel ?? null,
    kilnThreads: kiln?.info?.numThreads ?? null,
    timing: `best of ${REPEATS} runs of ~${TARGET} s after a warm-up`,
    libraries: Object.fromEntries(peers.map((p) => [p.id, p.description])),
    notes: peers.flatMap((p) => Object.entries(p.notes ?? {}).map(([kind, note]) => ({ library: p.id, kind, note }))),
    skipped,
    errors,
  },
  results: results.map((r) => ({ ...r, value: Number(r.value.toPrecision(4)) })),
};
const file = join(HERE, 'results', 'latest.json');
mkdirSync(dirname(file), { recursive: true });
writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
console.log(`\nWrote ${file}`);
