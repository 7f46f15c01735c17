// The before and after of a change on one machine, in one run: bench/run.mjs's rows for this
// checkout and for an earlier commit (the base), alternating in the same minutes, each row's
// median (min - max over its runs) for both builds and their ratio. Issue 18 asks for the training
// steps as ratios to the build before the issue (a0f193a); the machine's speed drifts by 10-20%
// over minutes (README.md, "The machine's own spread"), so a figure recorded on another day is
// not a fair base.
//
//   node bench/against-base.mjs <commit> [--only=cnn-train,lstm-train,mlp-train] [--rounds=2]
//
// The base is exported with `git archive` into ~/.cache/kiln/base-builds/<commit>/ and set up
// there by its own scripts/setup.mjs (its npm ci, native addon and TypeScript; no WASM) with a
// cargo cache of its own. This checkout's bench/ is copied beside it (bench-current/), so both
// builds run the same workload definitions and timing code; it stays there, so any other bench
// script can be pointed at the base too, e.g.
// `node ~/.cache/kiln/base-builds/<commit>/bench-current/conv-passes.mjs --only conv2d`.
// Only the native `kiln` column is compared.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { homedir, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { workloads } from './workloads.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(HERE);
const CACHE = join(homedir(), '.cache', 'kiln', 'base-builds');

const args = process.argv.slice(2);
const option = (name, fallback) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const commitArg = args.find((a) => !a.startsWith('--'));
if (!commitArg) {
  console.error('usage: node bench/against-base.mjs <commit> [--only=cnn-train,lstm-train,mlp-train] [--rounds=2]');
  process.exit(2);
}
const only = option('only', 'cnn-train,lstm-train,mlp-train');
const rounds = Number(option('rounds', '2'));
if (!Number.isInteger(rounds) || rounds < 1) {
  console.error(`against-base: --rounds must be a positive integer, got ${option('rounds')}`);
  process.exit(2);
}

const git = (...a) => execFileSync('git', a, { cwd: ROOT, encoding: 'utf8' }).trim();
const commit = git('rev-parse', '--verify', `${commitArg}^{commit}`);
const baseRoot = join(CACHE, commit.slice(0, 12));

/** Exports and builds the base once; later runs reuse it. */
function prepareBase() {
  if (!existsSync(join(baseRoot, 'dist', 'index.js'))) {
    console.log(`[against-base] exporting ${commit.slice(0, 12)} into ${baseRoot} and building it (its own scripts/setup.mjs, native only)`);
    rmSync(baseRoot, { recursive: true, force: true });
    mkdirSync(baseRoot, { recursive: true });
    execFileSync('sh', ['-c', `git archive ${commit} | tar -x -C '${baseRoot}'`], { cwd: ROOT, stdio: 'inherit' });
    const r = spawnSync(process.execPath, ['scripts/setup.mjs', '--no-wasm'], {
      cwd: baseRoot,
      stdio: 'inherit',
      env: { ...process.env, CARGO_TARGET_DIR: join(CACHE, 'target') },
    });
    if (r.status !== 0) throw new Error(`against-base: the base's set-up failed (exit ${r.status ?? r.signal})`);
  }
  // This checkout's bench, always fresh, with this checkout's bench dependencies and FMA probe.
  const bench = join(baseRoot, 'bench-current');
  rmSync(bench, { recursive: true, force: true });
  cpSync(HERE, bench, { recursive: true, filter: (src) => !/\/bench\/(node_modules|results)(\/|$)/.test(src) });
  symlinkSync(join(HERE, 'node_modules'), join(bench, 'node_modules'));
  return bench;
}

/** One bench/run.mjs run of `benchDir`: the kiln column's `{ workload: runs }`. */
function runBench(benchDir) {
  const r = spawnSync(process.execPath, [join(benchDir, 'run.mjs'), `--only=${only}`, '--peers=kiln'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`against-base: ${benchDir}/run.mjs exited with ${r.status ?? r.signal}: ${r.stderr.trim().split('\n').pop()}`);
  const { results } = JSON.parse(readFileSync(join(benchDir, 'results', 'latest.json'), 'utf8'));
  return Object.fromEntries(results.filter((x) => x.library === 'kiln').map((x) => [x.workload, { value: x.value, unit: x.unit, runs: x.runs }]));
}

/** Whether a row's unit is a cost (ms, MB): then the speed-up is base / this, not this / base. */
const isCost = (row) => workloads.some((w) => w.lowerIsBetter && (row === w.id || row.startsWith(`${w.id}-`)));

const baseBench = prepareBase();
const fmt = (v) => (v >= 1e4 ? `${(v / 1e3).toFixed(1)}k` : v >= 100 ? v.toFixed(0) : v.toPrecision(3));
const cell = ({ value, runs }) => (runs ? `${fmt(runs.median)} (${fmt(runs.min)}-${fmt(runs.max)})` : fmt(value));
const head = git('rev-parse', '--short=12', 'HEAD');
console.log(`| round | workload | base ${commit.slice(0, 12)} | this checkout ${head} | ratio | load average |`);
console.log('|---|---|---|---|---|---|');
for (let round = 1; round <= rounds; round++) {
  // Alternate which build goes first, so neither always runs in the other's wake.
  const order = round % 2 ? ['base', 'this'] : ['this', 'base'];
  const load = loadavg()[0].toFixed(2);
  const got = {};
  for (const which of order) {
    console.error(`[against-base] round ${round} of ${rounds}: ${which === 'base' ? `the base ${commit.slice(0, 12)}` : 'this checkout'} (--only=${only})`);
    got[which] = runBench(which === 'base' ? baseBench : HERE);
  }
  for (const [workload, now] of Object.entries(got.this)) {
    const before = got.base[workload];
    const ratio = before ? (isCost(workload) ? before.value / now.value : now.value / before.value).toFixed(2) : '-';
    console.log(`| ${round} | ${workload} (${now.unit}) | ${before ? cell(before) : 'not in the base'} | ${cell(now)} | ${ratio} | ${load} |`);
  }
}
console.log('ratio = this checkout / base (medians; base / this checkout for a cost such as ms or MB): above 1, this checkout is better.');
