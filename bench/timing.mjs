// The timing policy shared by every in-process peer (numpy_bench.py follows the same one):
// warm up, calibrate a batch size so one measurement takes about TARGET seconds, then report the
// best (smallest) time per call over REPEATS measurements; a training step reports all STEP_RUNS
// measurements instead (timeStepRuns).
//
// A call slower than TARGET (a training step of a plain-JavaScript library takes seconds) skips the
// calibration: after the warm-up call, the best of SLOW_REPEATS single calls. This keeps the whole
// run within a few minutes; such a number is the best of 2, not of 3.

import { readdirSync, readFileSync } from 'node:fs';

export const TARGET = 0.7; // seconds per measurement (lands in ~0.5-1.5 s)
export const REPEATS = 3;
const WARMUP = 0.15; // seconds of warm-up calls (at least one call)
const CALIBRATE = 0.1; // a calibration batch grows until it takes this long
const SLOW_REPEATS = 2; // single timed calls of a function slower than TARGET
export const STEP_RUNS = 5; // measurements of a training step (min / median / max are reported)
const SLOW_STEP_RUNS = 3; // single timed steps of a library slower than TARGET (brain.js, convnetjs)

/**
 * Seconds on the wall clock; with KILN_BENCH_CLOCK=cpu, CPU seconds of this process instead, which
 * leave out the time other processes take the core (a shared machine): meaningful for
 * single-threaded libraries only (the WASM pair), since threads' CPU times add up.
 */
const now =
  process.env.KILN_BENCH_CLOCK === 'cpu'
    ? () => {
        const u = process.cpuUsage();
        return (u.user + u.system) / 1e6;
      }
    : () => performance.now() / 1000;
const gc = () => globalThis.gc?.();

/**
 * Seconds per call of a synchronous `fn` in each of `repeats` measurements of about TARGET seconds
 * (after a warm-up and a calibration); a call slower than TARGET gets `slowRepeats` single calls.
 */
function measureSync(fn, repeats, slowRepeats) {
  gc();
  let t0 = now();
  let calls = 0;
  do {
    fn();
    calls++;
  } while (now() - t0 < WARMUP);
  const runs = [];
  if ((now() - t0) / calls > TARGET) {
    for (let r = 0; r < slowRepeats; r++) {
      gc();
      t0 = now();
      fn();
      runs.push(now() - t0);
    }
    return runs;
  }
  let n = 1;
  let t;
  for (;;) {
    t0 = now();
    for (let i = 0; i < n; i++) fn();
    t = now() - t0;
    if (t >= CALIBRATE) break;
    n *= 2;
  }
  const iters = Math.max(1, Math.ceil((TARGET * n) / t));
  for (let r = 0; r < repeats; r++) {
    gc();
    const before = counters?.();
    t0 = now();
    for (let i = 0; i < iters; i++) fn();
    runs.push((now() - t0) / iters);
    if (before) measurementLog.push({ seconds: runs.at(-1), iters, ...perCall(before, counters(), iters) });
  }
  return runs;
}

/**
 * With KILN_BENCH_COUNTERS=1, each calibrated measurement of measureSync also records, per call,
 * the process's CPU seconds (all threads), its voluntary and involuntary context switches and its
 * minor page faults (getrusage), in `measurementLog` (bench/step-spread.mjs prints them): what
 * tells a slower measurement that did more work from one that waited.
 */
const counters = process.env.KILN_BENCH_COUNTERS
  ? () => {
      const u = process.resourceUsage();
      return { cpu: (u.userCPUTime + u.systemCPUTime) / 1e6, voluntary: u.voluntaryContextSwitches, involuntary: u.involuntaryContextSwitches, faults: u.minorPageFault, ...threadSeconds() };
    }
  : null;

/**
 * CPU seconds so far of the main thread, of Kiln's pool workers (threads named kiln-pool-*) and
 * of every other thread (V8's GC and compiler helpers, libuv), from /proc/self/task/<tid>/schedstat
 * (nanoseconds on the CPU): which thread a slow measurement's extra CPU went to. Zeros where
 * /proc is missing (not Linux).
 */
function threadSeconds() {
  const seconds = { cpuMain: 0, cpuPool: 0, cpuOther: 0 };
  let tids;
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return seconds;
  }
  for (const tid of tids) {
    try {
      const onCpu = Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e9;
      const name = readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
      seconds[Number(tid) === process.pid ? 'cpuMain' : name.startsWith('kiln-pool') ? 'cpuPool' : 'cpuOther'] += onCpu;
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return seconds;
}
export const measurementLog = [];
function perCall(a, b, iters) {
  return Object.fromEntries(Object.keys(a).map((k) => [k, (b[k] - a[k]) / iters]));
}

/** Best seconds per call of a synchronous `fn`. */
export function timeSync(fn) {
  return Math.min(...measureSync(fn, REPEATS, SLOW_REPEATS));
}

/** bench/step-trace.mjs's hook: when set, timeStepRuns hands each training step to it instead. */
let stepTimer = null;

/**
 * Makes timeStepRuns call `timer(step)` (which returns `{ runs }`) instead of timing the step
 * itself, so a tool can time a training row's own step function its own way; null restores it.
 */
export function replaceStepTimer(timer) {
  stepTimer = timer;
}

/**
 * A training step's seconds in each of STEP_RUNS measurements (SLOW_STEP_RUNS single steps when a
 * step is slower than TARGET): `{ runs }`, which run.mjs reports as min / median / max and whose
 * median the ratio columns use. A step's time moves from run to run more than a kernel's (the
 * allocator, thread scheduling), so the best of a few would flatter it and hide instability.
 */
export function timeStepRuns(step) {
  if (stepTimer) return stepTimer(step);
  return { runs: measureSync(step, STEP_RUNS, SLOW_STEP_RUNS) };
}

/** Best seconds per call of an async `fn` (each call awaited before the next). */
export async function timeAsync(fn) {
  gc();
  let t0 = now();
  let calls = 0;
  do {
    await fn();
    calls++;
  } while (now() - t0 < WARMUP);
  if ((now() - t0) / calls > TARGET) {
    let best = Infinity;
    for (let r = 0; r < SLOW_REPEATS; r++) {
      gc();
      t0 = now();
      await fn();
      best = Math.min(best, now() - t0);
    }
    return best;
  }
  let n = 1;
  let t;
  for (;;) {
    t0 = now();
    for (let i = 0; i < n; i++) await fn();
    t = now() - t0;
    if (t >= CALIBRATE) break;
    n *= 2;
  }
  const iters = Math.max(1, Math.ceil((TARGET * n) / t));
  let best = Infinity;
  for (let r = 0; r < REPEATS; r++) {
    gc();
    t0 = now();
    for (let i = 0; i < iters; i++) await fn();
    best = Math.min(best, (now() - t0) / iters);
  }
  return best;
}

/**
 * Per-phase seconds of a synchronous step: `step()` runs one step and returns the seconds each of
 * its phases took (an array, measured inside the step with `performance.now()`). The policy of
 * timeSync on the step's total time; the result is the average of each phase over the steps of the
 * measurement whose total was smallest.
 */
export function timePhasesSync(step) {
  const sumOf = (a) => a.reduce((x, y) => x + y, 0);
  gc();
  let t0 = now();
  let calls = 0;
  do {
    step();
    calls++;
  } while (now() - t0 < WARMUP);
  let iters;
  let repeats = REPEATS;
  if ((now() - t0) / calls > TARGET) {
    iters = 1;
    repeats = SLOW_REPEATS;
  } else {
    let n = 1;
    let t;
    for (;;) {
      t0 = now();
      for (let i = 0; i < n; i++) step();
      t = now() - t0;
      if (t >= CALIBRATE) break;
      n *= 2;
    }
    iters = Math.max(1, Math.ceil((TARGET * n) / t));
  }
  let best = null;
  for (let r = 0; r < repeats; r++) {
    gc();
    let sums = null;
    for (let i = 0; i < iters; i++) {
      const phases = step();
      sums = sums === null ? [...phases] : sums.map((s, j) => s + phases[j]);
    }
    const avg = sums.map((s) => s / iters);
    if (best === null || sumOf(avg) < sumOf(best)) best = avg;
  }
  return best;
}

/** Seconds since an arbitrary origin (for phase timings inside a step). */
export { now };
