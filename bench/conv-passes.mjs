// GFLOP per CPU-second of each pass of a convolution -- forward, input gradient, weight gradient --
// on Kiln's native and WASM backends: the three passes a CNN training step runs (issue 18). CPU time
// (this process's user + system, all threads) rather than wall-clock time, so the figures barely
// move when other processes share the machine; see cpu-efficiency.mjs for why.
//
// How each pass is timed through the public API:
// - forward: conv2d(x, w);
// - input gradient: convTranspose2d(dy, w) with the same stride and padding, which runs exactly
//   the kernel that conv2d's backward runs for dx (a conv-transpose is the input gradient of the
//   convolution it transposes);
// - weight gradient: grad(w => conv2d(x, w))(w, dy) runs the forward and then dW only (x is a
//   constant), so dW alone is that time less the forward's, shown as a derived column.
//
// `npm run bench:conv` (after `npm run bench` once, or `node scripts/setup.mjs`).
// `--only a,b` keeps the workloads whose id contains one of the words.
import { randomNormal } from './peers/common.mjs';

const kiln = await import('../dist/index.js');

/** The shapes issue 18 names: bench's conv2d-a and -b, a depthwise and a pointwise (1x1) layer. */
const workloads = [
  { id: 'conv2d-a', batch: 32, channels: 1, size: 28, filters: 32, kernel: 3, groups: 1 },
  { id: 'conv2d-b', batch: 8, channels: 64, size: 32, filters: 64, kernel: 3, groups: 1 },
  { id: 'depthwise', batch: 8, channels: 64, size: 32, filters: 64, kernel: 3, groups: 64 },
  { id: 'depthwise-s2', batch: 8, channels: 64, size: 32, filters: 64, kernel: 3, groups: 64, stride: 2 },
  { id: 'pointwise', batch: 8, channels: 64, size: 32, filters: 128, kernel: 1, groups: 1 },
];

const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1].split(',') : null;

/** Best CPU seconds per call of `fn` over 3 rounds of ~0.5 s wall-clock each. */
function cpuSecondsPerCall(fn) {
  fn();
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const start = process.cpuUsage();
    const t0 = performance.now();
    let calls = 0;
    while (performance.now() - t0 < 500) {
      fn();
      calls++;
    }
    const used = process.cpuUsage(start);
    best = Math.min(best, (used.user + used.system) / 1e6 / calls);
  }
  return best;
}

/**
 * CPU seconds per call of each pass of workload `w` on `backend`. `native-im2col` is the native
 * backend with its direct and Winograd kernels switched off (KILN_CONV_PATH=im2col, read per
 * call): the im2col + GEMM path they replaced, measured in the same run for the ratio;
 * `native-direct` keeps direct.rs but not Winograd (KILN_CONV_PATH=direct).
 */
function passes(w, backend) {
  if (backend === 'native-im2col' || backend === 'native-direct') {
    process.env.KILN_CONV_PATH = backend.slice('native-'.length);
    try {
      return passes(w, 'native');
    } finally {
      delete process.env.KILN_CONV_PATH;
    }
  }
  kiln.setBackend(backend);
  const { batch, channels, size, filters, kernel, groups, stride = 1 } = w;
  const opts = { padding: 'same', stride, groups };
  const out = Math.ceil(size / stride);
  const x = kiln.tensor(randomNormal(batch * channels * size * size, 7), [batch, channels, size, size]);
  const wt = kiln.tensor(randomNormal(filters * (channels / groups) * kernel * kernel, 8), [filters, channels / groups, kernel, kernel]);
  const dy = kiln.tensor(randomNormal(batch * filters * out * out, 9), [batch, filters, out, out]);
  const weightGrad = kiln.grad((v) => kiln.conv2d(x, v, opts));
  try {
    const forward = cpuSecondsPerCall(() => kiln.conv2d(x, wt, opts).dispose());
    const inputGrad = cpuSecondsPerCall(() => {
      const dx = kiln.convTranspose2d(dy, wt, opts);
      if (dx.shape[2] !== size) throw new Error(`conv-passes: input gradient is ${dx.shape}, expected ${size}x${size}`);
      dx.dispose();
    });
    const forwardAndWeightGrad = cpuSecondsPerCall(() => weightGrad(wt, dy).dispose());
    return { forward, inputGrad, forwardAndWeightGrad };
  } finally {
    kiln.dispose([x, wt, dy]);
    kiln.setBackend('native');
  }
}

console.log(`GFLOP per CPU-second of each convolution pass (Kiln native: ${kiln.numThreads()} threads, wasm: 1 thread).`);
console.log('dW = (forward + dW) - forward, derived. CPU seconds: other processes on the machine barely move these.');
const cols = ['forward', 'dX', 'fwd+dW', 'dW'];
console.log(`${'workload'.padEnd(44)} ${'backend'.padEnd(13)} ${cols.map((c) => c.padStart(9)).join(' ')}`);
for (const w of workloads) {
  if (only && !only.some((word) => w.id.includes(word))) continue;
  const out = Math.ceil(w.size / (w.stride ?? 1));
  const flops = 2 * w.batch * out * out * w.filters * (w.channels / w.groups) * w.kernel * w.kernel;
  const label = `${w.id} b${w.batch} ${w.size}x${w.size}x${w.channels}->${w.filters} ${w.kernel}x${w.kernel}${w.groups > 1 ? ` g${w.groups}` : ''}${w.stride ? ` s${w.stride}` : ''}`;
  for (const backend of (process.env.CONV_BACKENDS ?? "native,native-im2col,wasm").split(",")) {
    const t = passes(w, backend);
    const rate = (seconds, f = flops) => (f / seconds / 1e9).toFixed(1).padStart(9);
    const weightOnly = t.forwardAndWeightGrad - t.forward;
    console.log(`${label.padEnd(44)} ${backend.padEnd(13)} ${rate(t.forward)} ${rate(t.inputGrad)} ${rate(t.forwardAndWeightGrad, 2 * flops)} ${weightOnly > 0 ? rate(weightOnly) : '        -'}`);
  }
}
