// Where an imported ONNX model's CPU time goes, op by op, on Kiln native or WASM: process.cpuUsage()
// (user + system, every thread of the process: the threaded WASM build's worker_threads too) and
// wall time around each node of the graph,
// fused nodes included, summed per kind of node (a convolution's kind names its channels,
// kernel, stride and input size) and divided by the runs. On a loaded machine wall times mostly
// measure the scheduler; CPU time does not (docs/onnx.md, "Speed"), so CPU time is the figure to
// compare, and GFLOP per CPU-second for the convolutions (2 FLOP per multiply-add).
//
//   node bench/onnx-op-profile.mjs [--model=resnet50|squeezenet|transformer|PATH.onnx] [--batch=1] [--runs=10]
//        [--backend=native|wasm] [--threads=N (WASM: N > 1 runs the threaded build on worker_threads;
//        KILN_WASM_VARIANT=threads with --threads=1 runs that build on the calling thread alone)]
//        (KILN_ONNX_NCHWC=off: without the NCHWc layout pass, docs/onnx.md)
//        [--root=DIR (a checkout whose dist/ and npm/ to load: another build, for before/after)] [--json]
//
// The models are bench/onnx-models.mjs's (~/.cache/kiln/onnx-bench, made by bench/onnx_models.py).
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const arg = (name, fallback) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? fallback;
const root = resolve(arg('root', fileURLToPath(new URL('..', import.meta.url))));
const model = arg('model', 'resnet50');
const batch = Number(arg('batch', '1'));
const runs = Number(arg('runs', '10'));
const backend = arg('backend', 'native');
const threads = arg('threads', undefined);
const kiln = await import(join(root, 'dist/index.js'));
const CACHE = join(homedir(), '.cache', 'kiln', 'onnx-bench');
// The Transformer encoder is written by bench/onnx-transformer.mjs (one file per batch), the CNNs by bench/onnx_models.py.
const path = model === 'transformer' ? (await import('./onnx-transformer.mjs')).transformerFile(kiln, CACHE, batch) : model.endsWith('.onnx') ? model : join(CACHE, `${model}.onnx`);
const shape = model === 'transformer' ? [batch, 128, 256] : [batch, 3, 224, 224];
if (!existsSync(path)) throw new Error(`${path} is missing: run bench/onnx-models.mjs once (it prepares the models)`);

const { OPS, PREPARED_OPS } = await import(join(root, 'dist/onnx/ops/index.js'));
const { FusedNode } = await import(join(root, 'dist/onnx/fusion/fused-node.js'));
// The NCHWc layout pass's nodes (absent from builds before it): timed as fused nodes are.
const layout = await import(join(root, 'dist/onnx/layout/nodes.js')).catch(() => undefined);

/** Per kind: { calls, cpu (µs), wall (ms), macs, faults, switches }, over every measured run. */
const kinds = new Map();
let measuring = false;
let depth = 0;

/** A convolution's kind and multiply-adds, from its (first) Conv node, input, weight and output. */
function convKind(label, conv, args, out) {
  const [x, w] = args;
  const stride = conv.ints?.('strides') ?? [1, 1];
  const groups = conv.int?.('group', 1) ?? 1;
  const [n, c, h, wd] = x.shape;
  const [o, , kh, kw] = w.shape;
  const macs = n * o * out.shape[2] * out.shape[3] * (c / groups) * kh * kw;
  return { key: `${label} ${c}->${o} ${kh}x${kw}/s${stride[0]}${groups > 1 ? ` g${groups}` : ''} ${h}x${wd}`, macs };
}

/** A ConvConcat's kind (its sets' channels and kernels) and multiply-adds: args are x, then a weight and a bias per set. */
function convConcatKind(node, args, out) {
  const [x, ...filters] = args;
  const weights = filters.filter((_, i) => i % 2 === 0);
  const [n, c, h, wd] = x.shape;
  const plane = out.shape[2] * out.shape[3];
  const macs = weights.reduce((sum, w) => sum + n * plane * w.shape[0] * w.shape[1] * w.shape[2] * w.shape[3], 0);
  return { key: `${node.pattern} ${c}->${weights.map((w) => `${w.shape[0]} ${w.shape[2]}x${w.shape[3]}`).join(' + ')} ${h}x${wd}`, macs };
}

/** A blocked node's kind: a convolution's (channels from its weights, plane from its 5-D input, or 4-D for a stem reading plain) marked NCHWc, else its op and input shape. */
function blockedKind(node, args, results) {
  const original = node.original;
  const out = results[0];
  const weights = original?.pattern === 'ConvConcat' ? args.slice(1).filter((_, i) => i % 2 === 0) : original !== undefined && 'conv' in original ? [args[1]] : original?.opType === 'Conv' ? [args[1]] : [];
  if (weights.length === 0 || args[0]?.rank !== (node.plainInput ? 4 : 5)) return { key: `${node.opType} [${args[0]?.shape.join(', ')}]`, macs: 0 };
  const conv = original.conv ?? original.sets?.[0].conv ?? original;
  const stride = conv.ints?.('strides') ?? [1, 1];
  const [n, , h, wd] = args[0].shape;
  const plane = out.shape[2] * out.shape[3];
  const macs = weights.reduce((sum, w) => sum + n * plane * w.shape[0] * w.shape[1] * w.shape[2] * w.shape[3], 0);
  const label = `${original.pattern ?? 'Conv'} NCHWc${node.plainInput ? ' (plain in)' : ''}`;
  return { key: `${label} ${weights[0].shape[1]}->${weights.map((w) => `${w.shape[0]} ${w.shape[2]}x${w.shape[3]}`).join(' + ')}/s${stride[0]} ${h}x${wd}`, macs };
}

function kindOf(node, args, results) {
  if (layout !== undefined && node instanceof layout.LayoutNode) return blockedKind(node, args, results);
  if (node instanceof FusedNode && node.pattern === 'ConvConcat') return convConcatKind(node, args, results[0]);
  const label = node instanceof FusedNode ? node.pattern : node.opType;
  const conv = node instanceof FusedNode ? node.replaced[0] : node;
  if (conv.opType === 'Conv' && args[0]?.rank === 4 && args[1]?.rank === 4 && results[0]?.rank === 4) return convKind(label, conv, args, results[0]);
  const shape = args[0] === undefined ? '' : ` [${args[0].shape.join(', ')}]`;
  return { key: `${label}${shape}`, macs: 0 };
}

/** Wraps a node's run: times the outermost call only (a fused node's fallback runs OPS inside). */
function timed(run) {
  return function (args, node, context) {
    if (!measuring || depth > 0) return run.call(this, args, node, context);
    depth++;
    const usage = process.resourceUsage();
    const cpu = process.cpuUsage();
    const t = performance.now();
    try {
      const results = run.call(this, args, node, context);
      // Both backends run synchronously in Node: the results are final here.
      const wall = performance.now() - t;
      const used = process.cpuUsage(cpu);
      const after = process.resourceUsage();
      const { key, macs } = kindOf(this instanceof FusedNode ? this : node, args, results);
      const k = kinds.get(key) ?? { calls: 0, cpu: 0, wall: 0, macs: 0, faults: 0, switches: 0 };
      k.calls++;
      k.faults += after.minorPageFault - usage.minorPageFault;
      k.switches += after.voluntaryContextSwitches - usage.voluntaryContextSwitches;
      k.cpu += used.user + used.system;
      k.wall += wall;
      k.macs += macs;
      kinds.set(key, k);
      return results;
    } finally {
      depth--;
    }
  };
}

for (const op of Object.keys(OPS)) {
  const run = OPS[op];
  OPS[op] = function (args, node, context) {
    return timed(run).call(undefined, args, node, context);
  };
}
const fusedRun = FusedNode.prototype.run;
FusedNode.prototype.run = function (args, context) {
  return timed(function (a, _node, c) {
    return fusedRun.call(this, a, c);
  }).call(this, args, this, context);
};

for (const cls of layout === undefined ? [] : [layout.ReorderNode, Object.getPrototypeOf(layout.BlockedConvNode)]) {
  const run = cls.prototype.run;
  cls.prototype.run = function (args, context) {
    return timed(function (a, _node, c) {
      return run.call(this, a, c);
    }).call(this, args, this, context);
  };
}

// A compiled run (ts/onnx/replay.ts) calls each node's prepared function (a blocked node's, a
// fused node's, a plain op's from PREPARED_OPS), not its run: those are timed too (a run that calls
// its prepared function inside is timed once, as above). Prepared functions return their results
// as a list (a blocked node's returned one tensor before the fused plan compiled too).
const timedPrepared = (prepared, self, node, context) => {
  if (prepared === undefined) return undefined;
  let list;
  return (a) => {
    const results = timed(() => {
      const r = prepared(a);
      list = Array.isArray(r);
      return list ? r : [r];
    }).call(self, a, node, context);
    return list ? results : results[0];
  };
};
const preparing = layout === undefined ? [] : ['ReorderNode', 'BlockedConvNode', 'BlockedConcatNode', 'BlockedElementwiseNode', 'BlockedMaxPoolNode', 'BlockedAvgPoolNode'];
for (const cls of [...preparing.map((name) => layout[name]), FusedNode].filter((cls) => cls?.prototype.prepare !== undefined)) {
  const prepare = cls.prototype.prepare;
  cls.prototype.prepare = function (args, context) {
    return timedPrepared(prepare.call(this, args, context), this, this, context);
  };
}
for (const [op, prepare] of Object.entries(PREPARED_OPS ?? {})) {
  PREPARED_OPS[op] = (args, node, context) => timedPrepared(prepare(args, node, context), undefined, node, context);
}

kiln.setBackend(backend, threads === undefined ? undefined : { threads: Number(threads) });
const onnx = kiln.onnx.load(path);
const x = kiln.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * 0.37)), shape);
const infer = () => kiln.noGrad(() => kiln.tidy(() => onnx.forward(x).dataSync()));
for (let i = 0; i < 2; i++) infer();
measuring = true;
const usage0 = process.resourceUsage();
const cpu0 = process.cpuUsage();
const t0 = performance.now();
for (let i = 0; i < runs; i++) infer();
const wallTotal = (performance.now() - t0) / runs;
const used = process.cpuUsage(cpu0);
const cpuTotal = (used.user + used.system) / 1000 / runs;
const usage1 = process.resourceUsage();
// Minor page faults (fresh memory touched: an output buffer the allocator got from the kernel)
// and voluntary context switches (a thread went to sleep: each wake-up of an idle pool worker
// follows one), every thread of the process, per inference.
const faultsTotal = (usage1.minorPageFault - usage0.minorPageFault) / runs;
const switchesTotal = (usage1.voluntaryContextSwitches - usage0.voluntaryContextSwitches) / runs;
measuring = false;

const rows = [...kinds.entries()]
  .map(([key, k]) => ({ kind: key, calls: k.calls / runs, cpuMs: k.cpu / 1000 / runs, wallMs: k.wall / runs, gflopPerCpuS: k.macs > 0 ? (2 * k.macs) / (k.cpu / 1e6) / 1e9 : undefined, macsM: k.macs / runs / 1e6, faults: k.faults / runs, switches: k.switches / runs }))
  .sort((a, b) => b.cpuMs - a.cpuMs);
const opsCpu = rows.reduce((s, r) => s + r.cpuMs, 0);
const result = { model, batch, runs, backend, variant: backend === 'wasm' ? (Number(threads ?? 1) > 1 ? 'threads' : process.env.KILN_WASM_VARIANT ?? 'single-threaded') : undefined, threads: kiln.numThreads(), simd: kiln.simdLevel(), root, cpuMsPerInference: cpuTotal, wallMsPerInference: wallTotal, pageFaultsPerInference: faultsTotal, contextSwitchesPerInference: switchesTotal, opsCpuMs: opsCpu, rows };
if (process.argv.includes('--json')) {
  console.log(JSON.stringify(result));
} else {
  console.log(`${model} batch ${batch}, ${runs} runs, ${backend}${result.variant ? ` (${result.variant} build)` : ''}, ${result.threads} threads (${result.simd}), ${root}`);
  console.log(`per inference: CPU ${cpuTotal.toFixed(1)} ms (in nodes ${opsCpu.toFixed(1)}), wall ${wallTotal.toFixed(1)} ms, ${faultsTotal.toFixed(0)} page faults, ${switchesTotal.toFixed(0)} voluntary context switches`);
  console.log(`${'kind'.padEnd(58)} ${'calls'.padStart(5)} ${'CPU ms'.padStart(8)} ${'share'.padStart(6)} ${'wall ms'.padStart(8)} ${'GFLOP/CPU-s'.padStart(11)} ${'faults'.padStart(6)} ${'switches'.padStart(8)}`);
  for (const r of rows) {
    const share = `${((100 * r.cpuMs) / opsCpu).toFixed(1)}%`;
    console.log(`${r.kind.slice(0, 58).padEnd(58)} ${String(r.calls).padStart(5)} ${r.cpuMs.toFixed(2).padStart(8)} ${share.padStart(6)} ${r.wallMs.toFixed(2).padStart(8)} ${(r.gflopPerCpuS?.toFixed(1) ?? '').padStart(11)} ${r.faults.toFixed(0).padStart(6)} ${r.switches.toFixed(1).padStart(8)}`);
  }
}
x.dispose();
onnx.dispose();
