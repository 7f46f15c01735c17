// The machine's f32 FMA ceiling, measured by bench/flops-probe (a tiny Rust binary, not part of
// Kiln: no addon boundary in the figure). `npm run bench` builds it (buildFlopsProbe); the
// `fma-peak` row runs it (runFlopsProbe) and the matmul-1024 row is reported as a fraction of it.
// Its read mode (runReadProbe) gives the `memory-*` rows: the machine's own run-to-run spread.
import { spawnSync } from 'node:child_process';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const MANIFEST = join(HERE, 'flops-probe', 'Cargo.toml');
// Kiln's cargo cache (scripts/lib.mjs); the probe's package name keeps its binary apart.
const TARGET_DIR = process.env.CARGO_TARGET_DIR ?? join(homedir(), '.cache', 'kiln', 'target');
const BINARY = join(TARGET_DIR, 'release', 'kiln-flops-probe');

/** `cargo build --release` of the probe (seconds the first time, a no-op after). Throws on failure. */
export function buildFlopsProbe() {
  const r = spawnSync('cargo', ['build', '--release', '--quiet', '--manifest-path', MANIFEST], { stdio: 'inherit', env: { ...process.env, CARGO_TARGET_DIR: TARGET_DIR } });
  if (r.error || r.status !== 0) throw new Error(`could not build bench/flops-probe (cargo exited with ${r.status ?? r.error?.message})`);
}

/**
 * Runs the probe: { threads, best: { isa, gflops }, isas: [{ isa, gflops }] }, GFLOP/s of
 * independent f32 FMAs on all threads with each vector ISA the CPU has (best of 5 runs of
 * `seconds`, default ~0.3 s); `widest` measures only the widest ISA (about a second in all).
 */
export function runFlopsProbe({ seconds = 0.3, widest = false } = {}) {
  const r = spawnSync(BINARY, [String(seconds), ...(widest ? ['--widest'] : [])], { encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw new Error(`could not run ${BINARY} (npm run bench builds it): ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${BINARY} exited with ${r.status}: ${(r.stderr || '').trim()}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop());
  if (out.error) throw new Error(out.error);
  return out;
}

/**
 * The probe's read mode: every thread reads a buffer of `kib` KiB of its own again and again, in
 * `runs` measurements of about `seconds` each. Returns each measurement's GB/s (all threads),
 * in order: the spread of a machine that runs nothing else at the level of memory `kib` fits.
 */
export function runReadProbe({ kib, seconds = 0.7, runs = 5 }) {
  const r = spawnSync(BINARY, ['--read', String(kib), String(seconds), String(runs)], { encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw new Error(`could not run ${BINARY} (npm run bench builds it): ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${BINARY} --read exited with ${r.status}: ${(r.stderr || '').trim()}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop());
  if (out.error) throw new Error(out.error);
  return out.gbps;
}
