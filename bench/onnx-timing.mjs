// The ONNX bench's timing and checks, shared by Node (bench/onnx-models.mjs and its child
// bench/onnx-ort-web-threads.mjs) and the Chromium page (bench/web/onnx.js): plain JavaScript with
// no Node imports, so the page loads the same file and every row is timed the same way.

/** The input every runtime gets: sin(0.37 i) in the model's input shape (deterministic, not constant). */
export function benchInput(shape) {
  const n = shape.reduce((a, b) => a * b, 1);
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37));
}

/**
 * How long each turn of `alternate` runs its peer untimed before the timed run (runs under a
 * second): longer than another runtime's idle threads spin after its own run (below).
 */
export const SETTLE_MS = 250;

/**
 * Peers timed in alternation (A B A B ...): on a shared machine a burst of load then falls on
 * both instead of on whichever ran during it. runs: async functions returning the output. One
 * warm-up each (its output is returned for the agreement check), then rounds until at least 3
 * and at most 5 (more only while under ~12 s). Returns { ms: [median per peer], outputs }.
 */
export async function alternate(runs) {
  // Each turn starts with untimed runs for SETTLE_MS (for runs under a second; longer ones dwarf
  // the effect): a runtime's idle worker threads spin for a while after its run and take the
  // cores from the peer that runs next. onnxruntime-node's intra-op pool burns CPU for 50-100 ms
  // after a SqueezeNet batch-1 run (2 threads, loaded machine: 16, 12, 2.5 ms of CPU in the
  // first three 25 ms windows), onnxruntime-web's workers 46-160 ms; Kiln's pools spin 50 µs
  // (native) or not at all (WASM). One untimed run of a 7 ms model left the next peer's timed
  // run inside that window. bench/onnx-settle.mjs measures it (quiet, 13:31-13:36, medians of 30,
  // four rounds): Kiln's Transformer batch 1 took 7.3-8.7 ms alone and 6.5-9.0 after its own
  // 250 ms, but 9.9-13.0 timed after onnxruntime and one untimed run of its own; SqueezeNet
  // 5.9-7.5 alone, 6.2-8.4 settled, 7.4-8.6 after one untimed run. Noisy, but one way:
  // onnxruntime's own times moved with the machine, not with Kiln's run before them.
  const outputs = [];
  const last = [];
  for (const run of runs) {
    const t = performance.now();
    outputs.push(await run());
    last.push(performance.now() - t);
  }
  const times = runs.map(() => []);
  const start = performance.now();
  while (times[0].length < 3 || (times[0].length < 5 && performance.now() - start < 12000)) {
    for (const [i, run] of runs.entries()) {
      if (last[i] < 1000) {
        const turn = performance.now();
        do await run();
        while (performance.now() - turn < SETTLE_MS);
      }
      const t = performance.now();
      await run();
      last[i] = performance.now() - t;
      times[i].push(last[i]);
    }
  }
  const medianOf = (ts) => [...ts].sort((a, b) => a - b)[Math.floor(ts.length / 2)];
  return { ms: times.map(medianOf), outputs };
}

/** Median milliseconds of up to 5 runs (at least 3, more only while under ~6 s) after one warm-up. */
export async function median(fn) {
  await fn();
  const times = [];
  const start = performance.now();
  while (times.length < 3 || (times.length < 5 && performance.now() - start < 6000)) {
    const t = performance.now();
    await fn();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/** Largest |a - b| / (1 + |b|) over the elements: the agreement check before timing. */
export function maxDifference(a, b) {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  return worst;
}

/** A few statistics of an output, small enough to send between processes and compare. */
export function outputSummary(data) {
  const head = Array.from(data.subarray(0, 64));
  let sum = 0;
  for (let i = 0; i < data.length; i++) sum += data[i];
  return { length: data.length, head, mean: sum / data.length };
}
