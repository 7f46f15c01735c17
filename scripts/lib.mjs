// Shared helpers for the project scripts: logging steps and running commands.
import { spawnSync } from 'node:child_process';
import { homedir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Rust builds are cached outside the clone so a fresh clone (CI) reuses earlier compiles. */
export const CARGO_TARGET_DIR = process.env.CARGO_TARGET_DIR ?? join(homedir(), '.cache', 'kiln', 'target');

export function step(msg) {
  console.log(`\x1b[36m[kiln]\x1b[0m ${msg}`);
}

/** Runs a command with inherited stdio; exits the process on failure. */
export function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: ROOT, ...options, env: { ...process.env, CARGO_TARGET_DIR, ...options.env } });
  if (r.error) {
    console.error(`[kiln] could not run ${cmd}: ${r.error.message}`);
    process.exit(1);
  }
  if (r.status !== 0) {
    console.error(`[kiln] ${cmd} ${args.join(' ')} failed (exit ${r.status})`);
    process.exit(r.status ?? 1);
  }
}

/** Whether a command exists on PATH. */
export function has(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}
