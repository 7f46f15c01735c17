// The timing policy shared by every in-process peer (numpy_bench.py follows the same one):
// warm up, calibrate a batch size so one measurement takes about TARGET seconds, then report the
// best (smallest) time per call over REPEATS measurements.
//
// A call slower than TARGET (a training step of a plain-JavaScript library takes seconds) skips the
// calibration: after the warm-up call, the best of SLOW_REPEATS single calls. This keeps the whole
// run within a few minutes; such a number is the best of 2, not of 3.

export const TARGET = 0.7; // seconds per measurement (lands in ~0.5-1.5 s)
export const REPEATS = 3;
const WARMUP = 0.15; // seconds of warm-up calls (at least one call)
const CALIBRATE = 0.1; // a calibration batch grows until it takes this long
const SLOW_REPEATS = 2; // single timed calls of a function slower than TARGET

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

/** Best seconds per call of a synchronous `fn`. */
export function timeSync(fn) {
  gc();
  let t0 = now();
  let calls = 0;
  do {
    fn();
    calls++;
  } while (now() - t0 < WARMUP);
  if ((now() - t0) / calls > TARGET) {
    let best = Infinity;
    for (let r = 0; r < SLOW_REPEATS; r++) {
      gc();
      t0 = now();
      fn();
      best = Math.min(best, now() - t0);
    }
    return best;
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
  let best = Infinity;
  for (let r = 0; r < REPEATS; r++) {
    gc();
    t0 = now();
    for (let i = 0; i < iters; i++) fn();
    best = Math.min(best, (now() - t0) / iters);
  }
  return best;
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
