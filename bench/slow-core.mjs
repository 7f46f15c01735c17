// A reproducible slow core (issue 18): a duty-cycled busy loop, pinned by the caller to one CPU,
// that takes `busy` ms of every `period` ms from whatever else runs there. Kiln's pool thread on
// that CPU then runs slower by about busy / period, as this VM's two vCPUs do when the host's
// other load lands on one of them (bench/README.md, "The training rows' run-to-run spread").
//   taskset -c 1 node bench/slow-core.mjs [busy ms] [period ms] [seconds]
// Defaults: 2 ms of every 8 (25%), for 600 s (or until killed). Sleeping is Atomics.wait (no
// timer slack of setTimeout's 1 ms granularity). A short period spreads the theft evenly over a
// step; the scheduler still hands the CPU over in slices, so a step of a few ms sees it as a few
// preemptions rather than a uniformly slower core.
const busy = Number(process.argv[2] ?? 2);
const period = Number(process.argv[3] ?? 8);
const seconds = Number(process.argv[4] ?? 600);
if (!(busy > 0 && period > busy && seconds > 0)) throw new Error('slow-core.mjs: needs 0 < busy < period and seconds > 0');
const sleeper = new Int32Array(new SharedArrayBuffer(4));
const end = performance.now() + seconds * 1000;
let sink = 0;
while (performance.now() < end) {
  const start = performance.now();
  while (performance.now() - start < busy) sink += Math.sqrt(sink + 1);
  Atomics.wait(sleeper, 0, 0, period - busy);
}
if (sink < 0) console.log(sink);
