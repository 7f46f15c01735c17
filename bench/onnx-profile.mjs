// Where an imported ONNX model's time goes, per node type and shape: Kiln native (wall and
// process CPU time around each node of the imported graph, fused nodes included, and the boundary
// calls one inference makes) and onnxruntime-node's own profile (SessionOptions.enableProfiling)
// of the same file, the same thread count.
//
//   node bench/onnx-profile.mjs [--model=transformer] [--batch=1] [--runs=20] [--no-ort]
//   node bench/onnx-profile.mjs --loop=200     # Kiln inference only, for `perf record -g node ...`
//   node bench/onnx-profile.mjs --file=old.onnx   # another file of the model (--model, --batch give its input)
//
// Kiln's graph runs node by node (ts/onnx/model.ts), each node a synchronous native call, so the
// time between a node's start and end is that node's; CPU time is the whole process's (both
// threads of a parallel kernel). "graph" is what the runner does between nodes (tidy, dispose).
import { mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchInput } from './onnx-timing.mjs';
import { transformerFile } from './onnx-transformer.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const kiln = await import(join(ROOT, 'dist/index.js'));
const { OPS } = await import(join(ROOT, 'dist/onnx/ops/index.js'));
const { FusedNode } = await import(join(ROOT, 'dist/onnx/fusion/fused-node.js'));
const { backend } = await import(join(ROOT, 'dist/engine.js'));

const arg = (name, fallback) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? fallback;
const modelName = arg('model', 'transformer');
const batch = Number(arg('batch', '1'));
const runs = Number(arg('runs', '20'));
const loop = Number(arg('loop', '0'));
const CACHE = join(homedir(), '.cache', 'kiln', 'onnx-bench');
// The Transformer is exported by this build (a directory of this process: the bench's cache is
// shared with other checkouts); --file= profiles another file of the same model.
const own = join(tmpdir(), `kiln-onnx-profile-${process.pid}`);
mkdirSync(own, { recursive: true });
const path = arg('file', undefined) ?? (modelName === 'transformer' ? transformerFile(kiln, own, batch) : join(CACHE, `${modelName}.onnx`));
const shape = modelName === 'transformer' ? [batch, 128, 256] : [batch, 3, 224, 224];
const input = benchInput(shape);

const model = kiln.onnx.load(path);
const x = kiln.tensor(input, shape);
const infer = () => kiln.noGrad(() => kiln.tidy(() => model.forward(x).dataSync()));

if (loop > 0) {
  // perf record: nothing but inference, after a warm-up.
  for (let i = 0; i < 3; i++) infer();
  const t = performance.now();
  for (let i = 0; i < loop; i++) infer();
  console.log(`${loop} runs, ${((performance.now() - t) / loop).toFixed(2)} ms each`);
  rmSync(own, { recursive: true, force: true });
  process.exit(0);
}

// 1. Per node: wall and CPU time, grouped by op type and input shapes.
const dims = (t) => (t === undefined ? '-' : `[${t.shape.join(',')}]${t.backend.impl.isContiguous(t.handle) ? '' : '*'}`);
/** FLOPs of the nodes whose work is known from their shapes (MatMul, fused attention). */
function flopsOf(kind, inputs) {
  const [a, b] = inputs;
  if (kind === 'MatMul' && a?.rank >= 2 && b?.rank >= 2) {
    const [m, k] = a.shape.slice(-2);
    const n = b.shape[b.rank - 1];
    const batches = a.shape.slice(0, -2).reduce((p, d) => p * d, 1);
    return 2 * batches * m * k * n;
  }
  if (kind === 'Attention' && a?.rank >= 3 && b !== undefined) {
    const tq = a.shape[a.rank - 2];
    const d = a.shape[a.rank - 1];
    const heads = a.shape.slice(0, -2).reduce((p, v) => p * v, 1);
    const tk = b.shape[b.rank - 2] === d ? b.shape[b.rank - 1] : b.shape[b.rank - 2];
    return 4 * heads * tq * tk * d;
  }
  return 0;
}

const rows = new Map();
let depth = 0;
let recording = false;
function timed(kind, inputs, run) {
  if (depth > 0 || !recording) return run();
  const key = `${kind} ${inputs.map(dims).join(' ')}`;
  depth++;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  try {
    return run();
  } finally {
    const wall = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    depth--;
    const row = rows.get(key) ?? { kind, key, calls: 0, wall: 0, cpu: 0, flops: flopsOf(kind, inputs) };
    row.calls++;
    row.wall += wall;
    row.cpu += (cpu.user + cpu.system) / 1000;
    rows.set(key, row);
  }
}
for (const [op, impl] of Object.entries(OPS)) OPS[op] = (inputs, node, context) => timed(op, inputs, () => impl(inputs, node, context));
const fusedRun = FusedNode.prototype.run;
FusedNode.prototype.run = function run(inputs, context) {
  return timed(this.pattern, inputs, () => fusedRun.call(this, inputs, context));
};

for (let i = 0; i < 3; i++) infer();
let total = 0;
let totalCpu = 0;
recording = true;
for (let i = 0; i < runs; i++) {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  infer();
  total += performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  totalCpu += (cpu.user + cpu.system) / 1000;
}
recording = false;

const per = (v) => (v / runs).toFixed(3).padStart(8);
const sorted = [...rows.values()].sort((a, b) => b.wall - a.wall);
const nodeWall = sorted.reduce((s, r) => s + r.wall, 0);
const nodeCpu = sorted.reduce((s, r) => s + r.cpu, 0);
console.log(`Kiln native, ${modelName} batch ${batch}, ${kiln.numThreads()} threads (SIMD ${kiln.simdLevel()}), ${runs} runs: ${per(total)} ms wall, ${per(totalCpu)} ms CPU per inference`);
console.log('(* = a non-contiguous view; GFLOP/s from wall time)');
console.log(`${'node (op, input shapes)'.padEnd(64)} ${'calls'.padStart(5)} ${'wall ms'.padStart(8)} ${'CPU ms'.padStart(8)} ${'share'.padStart(6)} GFLOP/s`);
for (const r of sorted) {
  const gflops = r.flops > 0 ? ((r.flops * r.calls) / (r.wall / 1000) / 1e9).toFixed(1) : '';
  console.log(`${r.key.slice(0, 64).padEnd(64)} ${String(r.calls / runs).padStart(5)} ${per(r.wall)} ${per(r.cpu)} ${((100 * r.wall) / total).toFixed(1).padStart(5)}% ${gflops}`);
}
const byKind = new Map();
for (const r of sorted) {
  const k = byKind.get(r.kind) ?? { calls: 0, wall: 0, cpu: 0 };
  k.calls += r.calls;
  k.wall += r.wall;
  k.cpu += r.cpu;
  byKind.set(r.kind, k);
}
console.log('\nper op type:');
for (const [kind, k] of [...byKind].sort((a, b) => b[1].wall - a[1].wall)) {
  console.log(`${kind.padEnd(40)} ${String(k.calls / runs).padStart(5)} ${per(k.wall)} ${per(k.cpu)} ${((100 * k.wall) / total).toFixed(1).padStart(5)}%`);
}
console.log(`${'graph (between nodes)'.padEnd(40)} ${''.padStart(5)} ${per(total - nodeWall)} ${per(totalCpu - nodeCpu)} ${((100 * (total - nodeWall)) / total).toFixed(1).padStart(5)}%`);

// 2. Boundary calls of one inference.
const impl = backend().impl;
const calls = new Map();
const originals = {};
for (const name of Object.keys(impl)) {
  if (typeof impl[name] !== 'function') continue;
  originals[name] = impl[name];
  impl[name] = (...a) => {
    calls.set(name, (calls.get(name) ?? 0) + 1);
    return originals[name].apply(impl, a);
  };
}
infer();
Object.assign(impl, originals);
const count = [...calls.values()].reduce((s, c) => s + c, 0);
console.log(`\nboundary calls per inference: ${count} (${[...calls].sort((a, b) => b[1] - a[1]).map(([n, c]) => `${n} ${c}`).join(', ')})`);
x.dispose();
model.dispose();

// 3. onnxruntime-node's own profile of the same file.
if (!process.argv.includes('--no-ort')) {
  const ort = createRequire(join(ROOT, 'bench/package.json'))('onnxruntime-node');
  const dir = join(tmpdir(), `kiln-ort-profile-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const options = { executionProviders: ['cpu'], intraOpNumThreads: kiln.numThreads(), interOpNumThreads: 1, graphOptimizationLevel: 'all', enableProfiling: true, profileFilePrefix: join(dir, 'ort') };
  const session = await ort.InferenceSession.create(readFileSync(path), options);
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', input, shape) };
  for (let i = 0; i < 3; i++) await session.run(feeds);
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) await session.run(feeds);
  const ortMs = (performance.now() - t0) / runs;
  session.endProfiling();
  await session.release();
  const file = readdirSync(dir).find((f) => f.endsWith('.json'));
  const events = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  rmSync(dir, { recursive: true, force: true });
  // Node events of the timed runs only: the last `runs` model_run events bound them.
  const modelRuns = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').slice(-runs);
  const from = modelRuns[0]?.ts ?? 0;
  const nodes = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time') && e.ts >= from);
  const ortRows = new Map();
  for (const e of nodes) {
    const key = `${e.args.op_name} ${(e.args.input_type_shape ?? []).map((s) => `[${Object.values(s)[0].join(',')}]`).join(' ')}`;
    const row = ortRows.get(key) ?? { calls: 0, us: 0 };
    row.calls++;
    row.us += e.dur;
    ortRows.set(key, row);
  }
  const ortTotal = [...ortRows.values()].reduce((s, r) => s + r.us, 0) / 1000;
  console.log(`\nonnxruntime-node ${ort.env?.versions?.node ?? ''}, the same file, intraOpNumThreads ${kiln.numThreads()}: ${ortMs.toFixed(3)} ms wall per inference (profiling on), kernels ${(ortTotal / runs).toFixed(3)} ms`);
  for (const [key, r] of [...ortRows].sort((a, b) => b[1].us - a[1].us)) {
    console.log(`${key.slice(0, 64).padEnd(64)} ${String(r.calls / runs).padStart(5)} ${per(r.us / 1000)}`);
  }
}
rmSync(own, { recursive: true, force: true });
