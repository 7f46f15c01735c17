/**
 * Runs a worker script under Open MPI's mpirun on this machine (loopback): N ranks,
 * oversubscribed on the 2 cores, as root in containers. Collects each rank's stdout JSON line.
 * mpi_yield_when_idle: a rank waiting in a collective yields its core instead of spinning, which
 * oversubscribed ranks need (spinning ranks starve the one they wait for).
 * Each job gets its own session directory (orte_tmpdir_base): two mpiruns starting at once race
 * to create the shared /tmp/ompi.<host>.<uid>, and the loser fails in orte_init ("File exists").
 * `stdout` is each rank's own output, rank after rank (--output-filename): mpirun's merged stream
 * can cut one rank's long line with another's.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface MpiRun {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Path of a worker in tests/distributed/workers. */
export function worker(name: string): string {
  return fileURLToPath(new URL(`./workers/${name}`, import.meta.url));
}

/** `mpirun -np ranks node script ...args`; resolves when mpirun exits (killed after `timeoutMs`). */
export function mpirun(ranks: number, script: string, args: string[] = [], timeoutMs = 120_000, env: Record<string, string> = {}): Promise<MpiRun> {
  const start = Date.now();
  const sessionDir = mkdtempSync(join(tmpdir(), 'kiln-mpirun-'));
  return new Promise((resolve) => {
    const mca = ['--mca', 'mpi_yield_when_idle', '1', '--mca', 'orte_tmpdir_base', sessionDir, '--output-filename', join(sessionDir, 'out')];
    const child = spawn('mpirun', ['--allow-run-as-root', '--oversubscribe', ...mca, '-np', String(ranks), 'node', script, ...args], {
      env: { ...process.env, RAYON_NUM_THREADS: '1', ...env },
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const perRank = rankOutputs(join(sessionDir, 'out'));
      rmSync(sessionDir, { recursive: true, force: true });
      resolve({ code, signal, stdout: perRank ?? stdout, stderr, seconds: (Date.now() - start) / 1000 });
    });
  });
}

/** The ranks' stdout files under --output-filename's `dir` (<dir>/<job>/rank.<n>/stdout), joined in rank order. */
function rankOutputs(dir: string): string | null {
  if (!existsSync(dir)) return null;
  const files: { rank: number; path: string }[] = [];
  for (const job of readdirSync(dir)) {
    for (const entry of readdirSync(join(dir, job))) {
      const m = /^rank\.(\d+)$/.exec(entry);
      const path = join(dir, job, entry, 'stdout');
      if (m && existsSync(path)) files.push({ rank: Number(m[1]), path });
    }
  }
  if (files.length === 0) return null;
  return files.sort((a, b) => a.rank - b.rank).map((f) => readFileSync(f.path, 'utf8')).join('');
}

/**
 * The JSON lines the ranks printed (each starts with {"rank"), ordered by rank. mpirun merges the
 * ranks' stdout, so a line may follow another rank's unterminated output (a progress bar's \r).
 */
export function byRank<T extends { rank: number }>(run: MpiRun): T[] {
  const lines = run.stdout.split('\n').map((l) => l.slice(Math.max(0, l.indexOf('{"rank"')))).filter((l) => l.startsWith('{"rank"'));
  return lines.map((l) => JSON.parse(l) as T).sort((a, b) => a.rank - b.rank);
}
