// Where the cnn-train step's run-to-run spread comes from (issue 18): runs Kiln's cnn-train step
// (peers/cnn.mjs, native backend) many times and records, per step, the wall time of each phase
// (forward+loss, backward, optimizer), the process's CPU time and its minor page faults (a page
// the kernel had to map, and zero, on first touch). Prints percentiles and how step time follows
// page faults. `node --expose-gc bench/cnn-stability.mjs [steps, default 200]`; compare runs with
// allocator settings, e.g. GLIBC_TUNABLES=glibc.malloc.mmap_threshold=... (see bench/README.md).
import { CNN } from './workloads.mjs';
import { cnnSetup } from './peers/cnn.mjs';

const kiln = await import('../dist/index.js');
const steps = Number(process.argv[2] ?? 200);
const params = CNN;
const d = cnnSetup(params);
const { nn } = kiln;
const model = new nn.Sequential(
  new nn.Conv2d(1, 32, 3), new nn.ReLU(), new nn.MaxPool2d(2),
  new nn.Conv2d(32, 64, 3), new nn.ReLU(), new nn.MaxPool2d(2),
  new nn.Flatten(), new nn.Linear(1600, 128), new nn.ReLU(), new nn.Linear(128, params.classes),
);
const x = kiln.tensor(d.x, [params.batch, 1, params.size, params.size]);
const y = kiln.tensor(d.labels, [params.batch], 'int32');
const opt = new kiln.optim.Adam(model.parameters(), { lr: params.lr });

const faults = () => process.resourceUsage().minorPageFault;
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e3;
};
/** One step with a clock (ms) and counters read between its phases. */
function step() {
  const [f0, c0, t0] = [faults(), cpu(), performance.now()];
  return kiln.tidy(() => {
    opt.zeroGrad();
    const loss = kiln.crossEntropy(model.forward(x), y);
    loss.dataSync();
    const t1 = performance.now();
    loss.backward();
    const t2 = performance.now();
    opt.step();
    const t3 = performance.now();
    return { wall: t3 - t0, forward: t1 - t0, backward: t2 - t1, optimizer: t3 - t2, cpu: cpu() - c0, faults: faults() - f0 };
  });
}

for (let i = 0; i < 10; i++) step(); // warm-up
const rows = Array.from({ length: steps }, step);
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
console.log(`cnn-train step, ${steps} steps after 10 warm-up, Kiln ${kiln.simdLevel()} ${kiln.numThreads()} threads, GLIBC_TUNABLES=${process.env.GLIBC_TUNABLES ?? '(unset)'}`);
console.log(`${'per step'.padEnd(14)} ${['p10', 'p50', 'p90', 'max'].map((s) => s.padStart(9)).join('')}`);
for (const key of ['wall', 'forward', 'backward', 'optimizer', 'cpu', 'faults']) {
  const xs = rows.map((r) => r[key]);
  const unit = key === 'faults' ? '' : ' ms';
  console.log(`${(key + unit).padEnd(14)} ${[10, 50, 90, 100].map((p) => pct(xs, p).toFixed(key === 'faults' ? 0 : 2).padStart(9)).join('')}`);
}
// Steps with many faults vs few: does the time follow them?
const median = pct(rows.map((r) => r.faults), 50);
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const [hi, lo] = [rows.filter((r) => r.faults > median), rows.filter((r) => r.faults <= median)];
console.log(`cpu ms per step: ${mean(hi.map((r) => r.cpu)).toFixed(2)} over ${hi.length} steps with > ${median} faults, ${mean(lo.map((r) => r.cpu)).toFixed(2)} over ${lo.length} with fewer`);
console.log(`samples/s from the median wall time: ${((1000 * params.batch) / pct(rows.map((r) => r.wall), 50)).toFixed(0)}`);
opt.dispose();
model.dispose();
kiln.dispose([x, y]);
