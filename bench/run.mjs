// Side-by-side benchmarks: Kiln against other libraries on the same workloads, in one run.
// Normally started by `npm run bench` (scripts/bench.mjs), which builds Kiln and installs the peers
// first. Options: --only matmul,add (workload id or kind substrings), --peers kiln,numpy.
//
// Prints a table (one row per workload, a column per library, then Kiln/peer ratios) and writes
// bench/results/latest.json.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runFlopsProbe } from './flops-probe.mjs';
import { REPEATS, STEP_RUNS, TARGET } from './timing.mjs';
import { selectWorkloads } from './workloads.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));

/** Peer modules in table order; Kiln first (the ratios are Kiln / peer). */
const PEERS = ['kiln', 'kiln-wasm', 'kiln-gpu', 'pytorch', 'tfjs-cpu', 'tfjs-wasm', 'onnxruntime', 'numpy', 'brain', 'convnetjs'];

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
const fmtPercent = (f) => `${(100 * f).toFixed(0)}%`;
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
    peer.module = name; // for child.mjs
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

/** The table's rows: one per workload, or one per part of a workload with `parts`. */
const lowerMark = ' (lower)';
const rowsOf = (w) =>
  w.parts
    ? w.parts.map((p) => ({ id: `${w.id}-${p.id}`, part: p.id, label: `${p.label}${w.lowerIsBetter ? lowerMark : ''}`, w }))
    : [{ id: w.id, label: `${w.label}${w.lowerIsBetter ? lowerMark : ''}`, w }];
const tableRows = workloads.flatMap(rowsOf);

/**
 * A peer function's result as the table's value: seconds per call, or `{ runs }` (a training
 * step's seconds in each measurement, timing.mjs timeStepRuns), reported as the median with the
 * min, max and spread = (max - min) / median of the converted values.
 */
function measured(w, result) {
  if (typeof result === 'number') return { value: w.value(result) };
  const values = result.runs.map((s) => w.value(s)).sort((a, b) => a - b);
  const mid = values.length >> 1;
  const median = values.length % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
  const [min, max] = [values[0], values[values.length - 1]];
  return { value: median, runs: { min, median, max, spread: (max - min) / median, count: values.length } };
}

/**
 * The FMA probe's GFLOP/s now (widest ISA, best of 5 runs of 0.2 s: about a second), for the
 * workloads marked `probeAround`; undefined when the probe cannot run (not built: run.mjs started
 * without scripts/bench.mjs).
 */
function probeNow() {
  try {
    return runFlopsProbe({ seconds: 0.2, widest: true }).best.gflops;
  } catch {
    return undefined;
  }
}

/** Runs `kind` of one peer in a child process (child.mjs); returns its JSON report. */
function runChild(peer, kind, params) {
  const r = spawnSync(process.execPath, ['--expose-gc', join(HERE, 'child.mjs'), peer.module, kind, JSON.stringify(params)], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error((r.stderr || '').trim().split('\n').filter(Boolean).pop() || `child exited with ${r.status ?? r.signal}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

console.log(`\nMeasuring (best of ${REPEATS} runs of ~${TARGET} s each, after a warm-up; training steps: median of ${STEP_RUNS} runs):`);
const started = performance.now();
const results = []; // { workload, library, value, unit }
const childInfo = []; // { workload, library, peakRSS, loadedRSS, maxRSS, seconds } from child.mjs
const errors = [];
for (const w of workloads) {
  for (const peer of peers) {
    const fn = peer.workloads[w.child ?? w.kind];
    if (!fn) continue;
    const t0 = performance.now();
    const took = () => `(${((performance.now() - t0) / 1000).toFixed(1)} s)`;
    try {
      if (w.child) {
        const report = runChild(peer, w.child, w.params);
        childInfo.push({ workload: w.id, library: peer.id, ...report });
        const value = w.value(report.peakRSS);
        results.push({ workload: w.id, library: peer.id, value, unit: w.unit });
        console.log(`  ${w.label.padEnd(30)} ${peer.id.padEnd(10)} ${`${fmtNumber(value)} ${w.unit}`.padStart(16)}   ${took()} child process`);
      } else if (w.parts) {
        const seconds = await fn.call(peer, w.params);
        for (const row of rowsOf(w)) {
          const value = w.value(seconds[row.part]);
          results.push({ workload: row.id, library: peer.id, value, unit: w.unit });
          console.log(`  ${row.label.padEnd(30)} ${peer.id.padEnd(10)} ${`${fmtNumber(value)} ${w.unit}`.padStart(16)}`);
        }
        console.log(`  ${''.padEnd(30)} ${peer.id.padEnd(10)} ${''.padStart(16)}   ${took()}`);
      } else {
        // The machine's speed drifts (the probe read 349-423 GFLOP/s in one evening), so a row
        // compared with the FMA ceiling gets the probe of its own seconds: right before and after.
        const probeBefore = w.probeAround ? probeNow() : undefined;
        const { value, runs } = measured(w, await fn.call(peer, w.params));
        const probeAfter = w.probeAround ? probeNow() : undefined;
        results.push({ workload: w.id, library: peer.id, value, unit: w.unit, ...(runs ? { runs } : {}) });
        const range = runs ? `   min ${fmtNumber(runs.min)} max ${fmtNumber(runs.max)} (spread ${fmtPercent(runs.spread)} over ${runs.count})` : '';
        let probed = '';
        if (probeBefore !== undefined && probeAfter !== undefined) {
          const probe = (probeBefore + probeAfter) / 2;
          results.push({ workload: `${w.id}-probe`, library: peer.id, value: probe, unit: 'GFLOP/s', probe: { before: probeBefore, after: probeAfter } });
          probed = `   FMA probe before / after ${probeBefore.toFixed(0)} / ${probeAfter.toFixed(0)} GFLOP/s: ${fmtPercent(value / probe)} of their mean`;
        }
        console.log(`  ${w.label.padEnd(30)} ${peer.id.padEnd(10)} ${`${fmtNumber(value)} ${w.unit}`.padStart(16)}   ${took()}${range}${probed}`);
      }
    } catch (e) {
      const reason = e?.message?.split('\n')[0] ?? String(e);
      for (const row of rowsOf(w)) errors.push({ workload: row.id, library: peer.id, reason });
      console.log(`  ${w.label ?? w.id} ${peer.id.padEnd(10)} FAILED: ${reason}`);
    }
  }
}
for (const peer of peers) await peer.close?.();
const elapsed = (performance.now() - started) / 1000;

// ---- table ---------------------------------------------------------------------------------

const getById = (id, lib) => results.find((r) => r.workload === id && r.library === lib)?.value;
// Only libraries with at least one number in this run get a column.
const shown = peers.filter((p) => results.some((r) => r.library === p.id) || errors.some((e) => e.library === p.id));
const shownOthers = shown.filter((p) => p !== kiln);
// Extra ratio columns a peer asks for (`ratioWith`): e.g. kiln-wasm/tfjs-wasm, the WASM pair.
const extraRatios = shown.flatMap((p) => (p.ratioWith ?? []).filter((o) => shown.some((q) => q.id === o)).map((o) => [p.id, o]));
const header = ['workload', ...shown.map((p) => p.column), ...(kiln ? shownOthers.map((p) => `kiln/${p.id}`) : []), ...extraRatios.map(([a, b]) => `${a}/${b}`)];
const rows = tableRows.map((row) => [
  row.label,
  ...shown.map((p) => {
    const v = getById(row.id, p.id);
    if (v !== undefined) return `${p.notes?.[row.w.child ?? row.w.kind] ? '*' : ''}${fmtNumber(v)} ${row.w.unit}`;
    return errors.some((e) => e.workload === row.id && e.library === p.id) ? 'failed' : '-';
  }),
  ...(kiln
    ? shownOthers.map((p) => {
        const k = getById(row.id, 'kiln');
        const v = getById(row.id, p.id);
        if (k === undefined || v === undefined) return '-';
        return fmtRatio(row.w.lowerIsBetter ? v / k : k / v);
      })
    : []),
  ...extraRatios.map(([a, b]) => {
    const x = getById(row.id, a);
    const v = getById(row.id, b);
    if (x === undefined || v === undefined) return '-';
    return fmtRatio(row.w.lowerIsBetter ? v / x : x / v);
  }),
]);
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
console.log(`\nResults (higher is better, except rows marked${lowerMark}; kiln/X > 1 means Kiln is better), ${elapsed.toFixed(0)} s:\n`);
console.log(line(header));
console.log(widths.map((w) => '-'.repeat(w)).join('  '));
for (const r of rows) console.log(line(r));
console.log('');
// Rows timed as several runs (training steps, and the machine's read probes beside them): the
// median is in the table, the range here.
const ranged = tableRows.filter((row) => results.some((r) => r.workload === row.id && r.runs));
if (ranged.length) {
  console.log(`Training steps, and the machine's own memory-read spread (memory-* rows): min / median / max over ${STEP_RUNS} runs (fewer for a library slower than ${TARGET} s a step), spread = (max - min) / median (issue 18's target for training steps: <= 15%):`);
  for (const row of ranged) {
    const cells = results
      .filter((r) => r.workload === row.id && r.runs)
      .map(({ library, runs: s }) => `${library} ${fmtNumber(s.min)} / ${fmtNumber(s.median)} / ${fmtNumber(s.max)} (${fmtPercent(s.spread)}${s.count === STEP_RUNS ? '' : `, ${s.count} runs`})`);
    console.log(`  ${row.label}: ${cells.join('; ')}`);
  }
  console.log('');
}
// A note is a line or an array of lines.
const summaries = workloads.flatMap((w) => [w.note?.(getById)].flat()).filter(Boolean);
for (const s of summaries) console.log(`  ${s}`);
for (const w of workloads.filter((x) => x.child)) {
  const info = childInfo.filter((c) => c.workload === w.id);
  if (info.length) {
    const mb = (kb) => (kb / 1024).toFixed(0);
    console.log(`  ${w.label}: one child process per library (VmHWM); MB after loading the library -> peak: ${info.map((c) => `${c.library} ${mb(c.loadedRSS)} -> ${mb(c.peakRSS)}`).join(', ')}`);
  }
}
if (summaries.length || childInfo.length) console.log('');
for (const p of shown) console.log(`  ${p.column}: ${p.description}`);
for (const p of shown) for (const [kind, note] of Object.entries(p.notes ?? {})) if (workloads.some((w) => (w.child ?? w.kind) === kind)) console.log(`  * ${note}`);
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
    timing: `best of ${REPEATS} runs of ~${TARGET} s after a warm-up; training steps: median of ${STEP_RUNS} runs (runs: min / median / max / spread)`,
    libraries: Object.fromEntries(peers.map((p) => [p.id, p.description])),
    notes: peers.flatMap((p) => Object.entries(p.notes ?? {}).map(([kind, note]) => ({ library: p.id, kind, note }))),
    summaries,
    // peakRSS: VmHWM at the end; maxRSS: process.resourceUsage().maxRSS, which on Linux includes the
    // parent's RSS at the fork (see child.mjs), kept for reference.
    childProcesses: childInfo.map((c) => ({ workload: c.workload, library: c.library, loadedRSSKiB: c.loadedRSS, peakRSSKiB: c.peakRSS, maxRSSKiB: c.maxRSS })),
    skipped,
    errors,
  },
  // runs: min/median/max/spread of a training step; probe: the FMA probe before and after (`<id>-probe`)
  results: results.map((r) => ({ ...r, value: Number(r.value.toPrecision(4)) })),
};
const file = join(HERE, 'results', 'latest.json');
mkdirSync(dirname(file), { recursive: true });
writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
console.log(`\nWrote ${file}`);
