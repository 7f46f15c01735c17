// A training row's step over many consecutive steps in one process (issue 18's spread): Kiln's
// step of the row (the same peer function as `npm run bench`), 50 warm-up steps, then `steps`
// steps with no gc() between them, each timed, reported per block of `block` steps: the median,
// the fastest tenth (p10) and slowest tenth (p90) of the block's steps, and the process's CPU
// per step (all threads). A block whose p10 rises with its median, and whose CPU per step rises
// with its wall time, is a stretch where every step did the same work more slowly; nothing in
// the process changes between blocks (bench/README.md, "The machine's own spread").
//   node bench/step-trace.mjs [mlp-train|lstm-train|cnn-train] [steps] [block]
const { workloads } = await import('./workloads.mjs');
const { replaceStepTimer } = await import('./timing.mjs');
const kilnPeer = (await import('./peers/kiln.mjs')).default;

const id = process.argv[2] ?? 'mlp-train';
const steps = Number(process.argv[3] ?? 4000);
const block = Number(process.argv[4] ?? 100);
const w = workloads.find((x) => x.id === id && x.kind.endsWith('Train'));
if (!w) throw new Error(`step-trace.mjs: no training row '${id}'`);
if (!(block > 0 && steps >= block)) throw new Error('step-trace.mjs: needs steps >= block > 0');
console.log(await kilnPeer.init());

replaceStepTimer((step) => {
  for (let i = 0; i < 50; i++) step();
  const blocks = Math.floor(steps / block);
  const ms = new Float64Array(block);
  console.log(`${id}: ${blocks} blocks of ${block} steps, ms per step`);
  console.log('block  median     p10     p90  cpu ms/step');
  for (let b = 0; b < blocks; b++) {
    const c0 = process.cpuUsage();
    for (let i = 0; i < block; i++) {
      const t0 = performance.now();
      step();
      ms[i] = performance.now() - t0;
    }
    const c = process.cpuUsage(c0);
    const sorted = Array.from(ms).sort((x, y) => x - y);
    const at = (q) => sorted[Math.min(block - 1, Math.floor(block * q))].toFixed(3).padStart(7);
    console.log(`${String(b).padStart(5)} ${at(0.5)} ${at(0.1)} ${at(0.9)} ${((c.user + c.system) / 1e3 / block).toFixed(3).padStart(12)}`);
  }
  return { runs: [Number.NaN] };
});
kilnPeer.workloads[w.kind](w.params);
kilnPeer.close?.();
