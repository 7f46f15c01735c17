// Where a training row's run-to-run spread comes from (issue 18): runs Kiln's step of a training
// workload (mlp-train, lstm-train, cnn-train) through the same peer function and timing policy as
// `npm run bench` (timing.mjs, 5 calibrated measurements of ~0.7 s), ROUNDS times, and prints per
// measurement the wall time per step next to what the process did per step: CPU seconds (all
// threads), voluntary context switches (a thread that went to sleep: rayon workers parking
// between ops, or the main thread waiting for them), involuntary ones (preempted) and minor page
// faults, and the CPU split among the main thread, Kiln's pool workers and Node's other threads
// (V8's GC and compiler helpers). A slow measurement with as much CPU as a fast one waited; one
// with more CPU worked more, and the split says which thread did.
//   KILN_BENCH_COUNTERS=1 node --expose-gc bench/step-spread.mjs [mlp-train,lstm-train] [rounds]
if (!process.env.KILN_BENCH_COUNTERS) throw new Error('step-spread.mjs: set KILN_BENCH_COUNTERS=1 (timing.mjs records the counters only then)');
const { workloads } = await import('./workloads.mjs');
const { measurementLog } = await import('./timing.mjs');
const kilnPeer = (await import('./peers/kiln.mjs')).default;

const ids = (process.argv[2] ?? 'mlp-train,lstm-train').split(',');
const rounds = Number(process.argv[3] ?? 2);
console.log(await kilnPeer.init());
const pct = (x) => `${(100 * x).toFixed(1)}%`;
for (const id of ids) {
  const w = workloads.find((x) => x.id === id);
  if (!w) throw new Error(`step-spread.mjs: no workload '${id}'`);
  for (let round = 0; round < rounds; round++) {
    measurementLog.length = 0;
    const { runs } = kilnPeer.workloads[w.kind](w.params);
    const values = runs.map((s) => w.value(s)).sort((a, b) => a - b);
    console.log(`${id} round ${round + 1}: ${values.map((v) => v.toFixed(0)).join(' / ')} ${w.unit}, spread ${pct((values.at(-1) - values[0]) / values[Math.floor(values.length / 2)])}`);
    console.log('  wall ms/step  cpu ms/step  cpu/wall  voluntary/step  involuntary/step  faults/step  main ms  pool ms  other ms');
    for (const m of measurementLog) {
      const cells = [m.seconds * 1e3, m.cpu * 1e3, m.cpu / m.seconds, m.voluntary, m.involuntary, m.faults, m.cpuMain * 1e3, m.cpuPool * 1e3, m.cpuOther * 1e3];
      console.log('  ' + cells.map((v, i) => v.toFixed(i === 2 ? 2 : i === 3 || i === 4 || i === 5 ? 1 : 3).padStart([12, 12, 9, 15, 17, 12, 8, 8, 9][i])).join(' '));
    }
  }
}
kilnPeer.close?.();
