// A training row's run-to-run spread beside controls measured in the same seconds (issue 18):
// each round takes, in turn, one measurement of Kiln's step of the row (the bench's own step
// function, ~0.7 s of steps like timing.mjs's), one 0.7 s measurement of the FMA probe on every
// core (bench/flops-probe --fma-runs: no memory, no Kiln), and one 0.7 s read of a buffer the
// size of the step's working set (--read: the shared cache's speed), and for mlp-train one of
// the step's matrix products alone (crates/kiln-core/examples/mlp_products.rs, built here: no
// JavaScript, no allocation, no autograd, the same thread count). A spread the step shows and
// the probes beside it do not is the step's own; a round where all three slow down is the
// machine's. Per step measurement it also prints what the process did: CPU (all threads), the
// main thread's and the pool workers' CPU and voluntary switches (a worker that parked and was
// woken; the main thread waiting for it), involuntary switches (preempted) and V8's GC time.
//   node --expose-gc bench/step-controls.mjs [mlp-train|lstm-train|cnn-train] [rounds] [read KiB per thread]
// RAYON_NUM_THREADS=1 runs the step on one thread (the probes still use every core).
// Each measurement (the step's, the probes' and the products') is also bracketed by the link
// probe (`kiln-flops-probe --link`): "near" when CPU 0 reads what CPU 1 just wrote less than twice
// as slowly as its own data (a cache-line round trip of ~60 ns), "far" when 3-5x slower (~215 ns),
// "moved" when the two ends disagree. The host moves this VM's two vCPUs between the two for
// seconds at a time (bench/README.md, "Where the two vCPUs sit").
// KILN_OP_TIMES=1 also times every call into the backend (wall, per op name) and prints, for the
// fastest and the slowest measurement, each op's milliseconds per step: where a slow one lost time.
import { readdirSync, readFileSync } from 'node:fs';
import { buildFlopsProbe } from './flops-probe.mjs';
import { GCProfiler } from 'node:v8';
import { spawnSync } from 'node:child_process';
import { homedir } from 'node:os';
import { join } from 'node:path';

const { workloads } = await import('./workloads.mjs');
const { replaceStepTimer, TARGET } = await import('./timing.mjs');
const kilnPeer = (await import('./peers/kiln.mjs')).default;

const id = process.argv[2] ?? 'mlp-train';
const rounds = Number(process.argv[3] ?? 10);
// mlp-train's parameters, gradients and two Adam moments: 6.5 MB, half per thread.
const readKib = Number(process.argv[4] ?? 3328);
const w = workloads.find((x) => x.id === id && x.kind.endsWith('Train'));
if (!w) throw new Error(`step-controls.mjs: no training row '${id}'`);
const TARGET_DIR = process.env.CARGO_TARGET_DIR ?? join(homedir(), '.cache', 'kiln', 'target');
const RELEASE = join(TARGET_DIR, 'release');
const PROBE = join(RELEASE, 'kiln-flops-probe');
const PRODUCTS = join(RELEASE, 'examples', 'mlp_products');
const withProducts = id === 'mlp-train';
// Both controls are built here (no-ops once built), so none is left out for want of a build.
buildFlopsProbe();
if (withProducts) {
  const r = spawnSync('cargo', ['build', '--release', '--quiet', '-p', 'kiln-core', '--example', 'mlp_products'], {
    cwd: join(import.meta.dirname, '..'),
    stdio: 'inherit',
    env: { ...process.env, CARGO_TARGET_DIR: TARGET_DIR },
  });
  if (r.status !== 0) throw new Error(`step-controls.mjs: could not build the mlp_products example (cargo exited with ${r.status ?? r.error?.message})`);
}
console.log(await kilnPeer.init());

/** The last JSON line `binary args` prints; throws, naming the binary, when it cannot run. */
function runJson(binary, args, howToBuild) {
  const r = spawnSync(binary, args, { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`step-controls.mjs: ${binary} ${args.join(' ')} failed (${howToBuild}): ${r.stderr || r.error?.message}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

/** One probe measurement: `field`'s figure (GFLOP/s or GB/s) of every core together, or the whole JSON line for a null field. */
function probe(args, field) {
  const out = runJson(PROBE, args, 'npm run bench builds it');
  return field === null ? out : out[field][0];
}

/** Per thread of this process: on-CPU seconds and voluntary / involuntary switches, by role. */
function threads() {
  const out = { mainCpu: 0, poolCpu: 0, otherCpu: 0, mainVol: 0, poolVol: 0, invol: 0 };
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const task = `/proc/self/task/${tid}`;
      const role = Number(tid) === process.pid ? 'main' : readFileSync(`${task}/comm`, 'utf8').startsWith('kiln-pool') ? 'pool' : 'other';
      out[`${role}Cpu`] += Number(readFileSync(`${task}/schedstat`, 'utf8').split(' ')[0]) / 1e9;
      const status = readFileSync(`${task}/status`, 'utf8');
      const vol = Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)[1]);
      if (role !== 'other') out[`${role}Vol`] += vol;
      out.invol += Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(status)[1]);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out;
}

// Every backend method wrapped with a clock: ops call `backend().impl.<op>(...)` at call time.
const opTimes = new Map();
if (process.env.KILN_OP_TIMES) {
  const { backend } = await import('../dist/engine.js');
  const impl = backend().impl;
  for (const name of Object.keys(impl)) {
    const f = impl[name];
    if (typeof f !== 'function') continue;
    impl[name] = function (...args) {
      const t0 = performance.now();
      try {
        return f.apply(this, args);
      } finally {
        opTimes.set(name, (opTimes.get(name) ?? 0) + performance.now() - t0);
      }
    };
  }
}

/**
 * The link probe's state: 'near' when CPU 0 reads what CPU 1 just wrote less than twice as
 * slowly as its own data, else 'far' (3-5x slower). Measured once, about 60 ms.
 */
function link() {
  const out = runJson(PROBE, ['--link', '1'], 'npm run bench builds it');
  if (out.error) return { state: '?', tripNs: Number.NaN };
  const { other_cpu: other, own } = out.read_ns_per_kib;
  return { state: other[0] < 2 * own[0] ? 'near' : 'far', tripNs: out.trip_ns_median[0] };
}

/** Both links around a measurement: one state when they agree, 'moved' when they do not. */
const bracket = (before, after) => (before.state === after.state ? before.state : 'moved');

const pct = (x) => `${(100 * x).toFixed(0)}%`;
const spreadOf = (xs) => {
  const v = [...xs].sort((a, b) => a - b);
  return `${v[0].toFixed(1)} / ${v[Math.floor(v.length / 2)].toFixed(1)} / ${v.at(-1).toFixed(1)} (${pct((v.at(-1) - v[0]) / v[Math.floor(v.length / 2)])})`;
};

replaceStepTimer((step) => {
  // Warm up, then calibrate the steps of one measurement to TARGET seconds, as timing.mjs does.
  let t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < 300) (step(), n++);
  t0 = performance.now();
  for (let i = 0; i < 20; i++) step();
  const iters = Math.max(1, Math.round((TARGET * 1000 * 20) / (performance.now() - t0)));
  console.log(`${id}: ${rounds} rounds of ${iters} steps (~${TARGET} s), each beside 0.7 s of the FMA probe and 0.7 s of a ${readKib} KiB/thread read`);
  console.log(`round  link     samples/s  cpu/wall  main ms  pool ms  other ms  main vol  pool vol  invol  gc ms  | fma GFLOP/s (per cpu-s) link  read GB/s${withProducts ? '  products samples/s (cpu ms)  link' : ''}`);
  const table = [];
  for (let r = 0; r < rounds; r++) {
    globalThis.gc?.();
    const gcProfile = new GCProfiler();
    const linkBefore = link();
    const a = threads();
    const c0 = process.cpuUsage();
    gcProfile.start();
    opTimes.clear();
    t0 = performance.now();
    for (let i = 0; i < iters; i++) step();
    const wall = (performance.now() - t0) / 1000;
    const gcMs = gcProfile.stop().statistics.reduce((sum, g) => sum + g.cost, 0) / 1e3;
    const cpu = process.cpuUsage(c0);
    const b = threads();
    const linkAfterStep = link();
    const stepLink = bracket(linkBefore, linkAfterStep);
    const fmaRun = probe(['--fma-runs', String(TARGET), '1'], null);
    const [fma, fmaPerCpu] = [fmaRun.gflops[0], fmaRun.gflops_per_cpu_second[0]];
    const read = probe(['--read', String(readKib), String(TARGET), '1'], 'gbps');
    const linkAfterProbes = link();
    const fmaLink = bracket(linkAfterStep, linkAfterProbes);
    const products = withProducts ? runJson(PRODUCTS, [String(TARGET), '1'], 'cargo build --release -p kiln-core --example mlp_products') : null;
    const productsLink = withProducts ? bracket(linkAfterProbes, link()) : '';
    const per = (k) => (b[k] - a[k]) / iters;
    const row = {
      value: w.value(wall / iters),
      stepMs: (wall / iters) * 1e3,
      cpuWall: (cpu.user + cpu.system) / 1e6 / wall,
      mainMs: per('mainCpu') * 1e3,
      poolMs: per('poolCpu') * 1e3,
      otherMs: per('otherCpu') * 1e3,
      mainVol: per('mainVol'),
      poolVol: per('poolVol'),
      invol: per('invol'),
      gcMs: gcMs / iters,
      fma,
      fmaPerCpu,
      read,
      stepCpuMs: ((cpu.user + cpu.system) / 1e3) / iters,
      stepLink,
      fmaLink,
      productsLink,
      products: products ? w.value(products.wall_ms[0] / 1e3) : Number.NaN,
      productsCpuMs: products?.cpu_ms[0],
      ops: new Map([...opTimes].map(([k, v]) => [k, v / iters])),
    };
    table.push(row);
    const cells = [row.value.toFixed(0).padStart(10), row.cpuWall.toFixed(2).padStart(9), ...[row.mainMs, row.poolMs, row.otherMs].map((x) => x.toFixed(3).padStart(8)), ...[row.mainVol, row.poolVol, row.invol].map((x) => x.toFixed(2).padStart(9)), row.gcMs.toFixed(3).padStart(6)];
    console.log(`${String(r + 1).padStart(5)}  ${stepLink.padEnd(7)} ${cells.join(' ')}  | ${fma.toFixed(1).padStart(11)} (${fmaPerCpu.toFixed(1)}) ${fmaLink.padEnd(7)} ${read.toFixed(1).padStart(10)}${products ? `${row.products.toFixed(0).padStart(20)} (${row.productsCpuMs.toFixed(3)})  ${productsLink}` : ''}`);
  }
  console.log(`min / median / max (spread): ${id} ${spreadOf(table.map((x) => x.value))} ${w.unit}; FMA probe ${spreadOf(table.map((x) => x.fma))} GFLOP/s; read ${spreadOf(table.map((x) => x.read))} GB/s${withProducts ? `; products alone ${spreadOf(table.map((x) => x.products))} ${w.unit}` : ''}`);
  console.log(`  CPU ms per step (all threads) ${spreadOf(table.map((x) => x.stepCpuMs))}: main ${spreadOf(table.map((x) => x.mainMs))}, pool ${spreadOf(table.map((x) => x.poolMs))}; FMA probe per CPU-second ${spreadOf(table.map((x) => x.fmaPerCpu))}${withProducts ? `; products alone CPU ms per step ${spreadOf(table.map((x) => x.productsCpuMs))}` : ''}`);
  const corr = (f, g) => {
    const xs = table.map(f);
    const ys = table.map(g);
    const mean = (v) => v.reduce((p, q) => p + q, 0) / v.length;
    const [mx, my] = [mean(xs), mean(ys)];
    const cov = xs.reduce((s, x, i) => s + (x - mx) * (ys[i] - my), 0);
    const sd = (v, m) => Math.sqrt(v.reduce((s, x) => s + (x - m) ** 2, 0));
    return (cov / (sd(xs, mx) * sd(ys, my))).toFixed(2);
  };
  console.log(`  correlation over rounds of the step's samples/s with: FMA probe ${corr((x) => x.value, (x) => x.fma)}, read ${corr((x) => x.value, (x) => x.read)}, products alone ${corr((x) => x.value, (x) => x.products)}, pool voluntary switches ${corr((x) => x.value, (x) => x.poolVol)}, gc ms ${corr((x) => x.value, (x) => x.gcMs)}${withProducts ? `; of the step's CPU per step with the products' ${corr((x) => x.stepCpuMs, (x) => x.productsCpuMs)}` : ''}`);
  // The same figures split by where the vCPUs sat (rounds whose links disagreed left out).
  const medianOf = (xs) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)];
  const byLink = (key, f, digits) =>
    ['far', 'near']
      .map((state) => {
        const rows = table.filter((x) => x[key] === state);
        return rows.length ? `${state}: ${rows.length} rounds, median ${medianOf(rows.map(f)).toFixed(digits)}` : `${state}: no round`;
      })
      .join('; ');
  console.log(`  by link: step samples/s ${byLink('stepLink', (x) => x.value, 0)}; step CPU ms ${byLink('stepLink', (x) => x.stepCpuMs, 3)}; FMA probe GFLOP/s ${byLink('fmaLink', (x) => x.fma, 1)}`);
  if (withProducts) console.log(`  by link: products samples/s ${byLink('productsLink', (x) => x.products, 0)}; products CPU ms ${byLink('productsLink', (x) => x.productsCpuMs, 3)}`);
  if (opTimes.size > 0) {
    const byValue = [...table].sort((a, b) => a.value - b.value);
    const [slow, fast] = [byValue[0], byValue.at(-1)];
    const names = [...new Set([...slow.ops.keys(), ...fast.ops.keys()])].sort((a, b) => (slow.ops.get(b) ?? 0) - (fast.ops.get(b) ?? 0) - ((slow.ops.get(a) ?? 0) - (fast.ops.get(a) ?? 0)));
    const total = (m) => [...m.values()].reduce((x, y) => x + y, 0);
    console.log(`ms per step in backend calls, slowest measurement (${slow.value.toFixed(0)} ${w.unit}: ${slow.stepMs.toFixed(3)} ms, ${total(slow.ops).toFixed(3)} in calls) / fastest (${fast.value.toFixed(0)}: ${fast.stepMs.toFixed(3)} ms, ${total(fast.ops).toFixed(3)} in calls)`);
    for (const n of names.slice(0, 12)) console.log(`  ${n.padEnd(28)} ${(slow.ops.get(n) ?? 0).toFixed(3).padStart(8)} ${(fast.ops.get(n) ?? 0).toFixed(3).padStart(8)}`);
  }
  return { runs: [Number.NaN] };
});
kilnPeer.workloads[w.kind](w.params);
kilnPeer.close?.();
