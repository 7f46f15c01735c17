// The timing policy shared by every in-process peer (numpy_bench.py follows the same one):
// warm up, calibrate a batch size so one measurement takes about TARGET seconds, then report the
// best (smallest) time per call over REPEATS measurements.

export const TARGET = 0.7; // seconds per measurement (lands in ~0.5-1.5 s)
export const REPEATS = 3;
const WARMUP = 0.15; // seconds of warm-up calls (at least one call)
const CALIBRATE = 0.1; // a calibration batch grows until it takes this long

const now = () => performance.now() / 1000;
const gc = () => globalThis.gc?.();

/** Best seconds per call of a synchronous `fn`. */
export function timeSync(fn) {
  gc();
  let t0 = now();
  do fn(); while (now() - t0 < WARMUP);
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
  do await fn(); while (now() - t0 < WARMUP);
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
