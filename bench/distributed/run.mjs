// `npm run bench:mpi`: all-reduce bandwidth of kiln.distributed.allReduce against Open MPI's own
// MPI_Allreduce measured from C (the engine's ceiling), float32 sum, 1 KB-64 MB, on N ranks of
// this machine (default 2; `-- --ranks 4`). Prints a table and writes
// bench/results/mpi-allreduce.json. Bus bandwidth follows the ring all-reduce's traffic:
// each rank sends and receives 2 (N-1)/N of the buffer (docs/distributed.md, cost model).
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const ranks = Number(args[args.indexOf('--ranks') + 1] || 2) || 2;
const MPIRUN = ['--allow-run-as-root', '--oversubscribe', '--mca', 'mpi_yield_when_idle', '1', '-np', String(ranks)];

function run(cmd, argv) {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', env: { ...process.env, RAYON_NUM_THREADS: '1' } });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status}):\n${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
}

const binary = join(homedir(), '.cache', 'kiln', 'mpi-allreduce-bench');
mkdirSync(dirname(binary), { recursive: true });
run('mpicc', ['-O2', '-o', binary, join(HERE, 'allreduce.c')]);
const c = run('mpirun', [...MPIRUN, binary]);
const kiln = run('mpirun', [...MPIRUN, 'node', join(HERE, 'allreduce.mjs')]);

const busGBs = (bytes, s) => ((2 * (ranks - 1)) / ranks) * bytes / s / 1e9;
const size = (b) => (b >= 1 << 20 ? `${b / (1 << 20)} MB` : `${b / 1024} KB`);
const rows = c.map((m, i) => ({ bytes: m.bytes, mpiSeconds: m.seconds, kilnSeconds: kiln[i].seconds, mpiBusGBs: busGBs(m.bytes, m.seconds), kilnBusGBs: busGBs(m.bytes, kiln[i].seconds) }));
console.log(`all-reduce (float32 sum), ${ranks} ranks on one machine (shared memory); bus bandwidth = 2(N-1)/N x bytes / time`);
console.log('| size | MPI_Allreduce (C) | GB/s | kiln.distributed.allReduce | GB/s | Kiln / MPI time |');
console.log('| ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) {
  console.log(`| ${size(r.bytes)} | ${(r.mpiSeconds * 1e6).toFixed(1)} µs | ${r.mpiBusGBs.toFixed(2)} | ${(r.kilnSeconds * 1e6).toFixed(1)} µs | ${r.kilnBusGBs.toFixed(2)} | ${(r.kilnSeconds / r.mpiSeconds).toFixed(2)}x |`);
}
mkdirSync(join(HERE, '..', 'results'), { recursive: true });
writeFileSync(join(HERE, '..', 'results', 'mpi-allreduce.json'), JSON.stringify({ ranks, rows }, null, 2));
