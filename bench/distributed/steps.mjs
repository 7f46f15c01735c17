// `npm run bench:mpi` (second part): the step-time breakdown of data-parallel training, the MNIST
// MLP and the CNN, 1 rank x 1 thread (global batch) against N ranks x 1 thread each (batch / N),
// DDP all-reducing after backward and overlapping it with backward (256 KiB buckets, so the
// models have several). Per step (medians, ms): compute = forward + backward + optimizer step,
// communication = time in the all-reduces, wait = how long syncGradients blocked, hidden =
// communication - wait (what ran during backward). Prints a table and writes
// bench/results/mpi-steps.json.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const WORKER = join(HERE, 'step-worker.mjs');
const args = process.argv.slice(2);
const ranks = Number(args[args.indexOf('--ranks') + 1] || 2) || 2;
const env = { ...process.env, RAYON_NUM_THREADS: '1' };

function run(cmd, argv) {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', env });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status}):\n${r.stderr}`);
  const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
  if (!line) throw new Error(`${cmd} ${argv.join(' ')} printed no result:\n${r.stdout}\n${r.stderr}`);
  return JSON.parse(line);
}
const mpirun = (mode, model) =>
  run('mpirun', ['--allow-run-as-root', '--oversubscribe', '--mca', 'mpi_yield_when_idle', '1', '-np', String(ranks), 'node', WORKER, mode, model]);

const rows = [];
for (const model of ['mlp', 'cnn']) {
  rows.push(run('node', [WORKER, 'single', model]), mpirun('after', model), mpirun('overlap', model));
}

const ms = (v) => v.toFixed(1);
console.log(`data-parallel step breakdown, ${ranks} ranks x 1 thread vs 1 rank x 1 thread (medians, ms)`);
console.log('| model | run | batch/rank | buckets | step | compute | communication | wait | hidden by overlap |');
console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) {
  const label = r.mode === 'single' ? '1 rank' : `${r.ranks} ranks, ${r.mode === 'after' ? 'after backward' : 'overlapped'}`;
  const hidden = r.communication > 0 ? `${ms(r.hidden)} (${Math.round((100 * r.hidden) / r.communication)}%)` : '-';
  console.log(`| ${r.model} | ${label} | ${r.batch} | ${r.buckets} | ${ms(r.step)} | ${ms(r.compute)} | ${ms(r.communication)} | ${ms(r.wait)} | ${hidden} |`);
}
mkdirSync(join(HERE, '..', 'results'), { recursive: true });
writeFileSync(join(HERE, '..', 'results', 'mpi-steps.json'), JSON.stringify({ ranks, rows }, null, 2));
