// Shared helpers for the project scripts: logging steps and running commands.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
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

/** Newest modification time under `paths` (relative to the repo; files or directories, recursively). */
export function newest(paths) {
  let t = 0;
  const visit = (p) => {
    if (!existsSync(p)) return;
    const s = statSync(p);
    if (s.isDirectory()) {
      for (const e of readdirSync(p)) if (!['node_modules', 'target', 'pkg-node', 'pkg-web'].includes(e)) visit(join(p, e));
    } else t = Math.max(t, s.mtimeMs);
  };
  paths.forEach((p) => visit(join(ROOT, p)));
  return t;
}

/** Modification time of a file (absolute, or relative to the repo), 0 if missing. */
export function mtime(p) {
  const full = p.startsWith('/') ? p : join(ROOT, p);
  return existsSync(full) ? statSync(full).mtimeMs : 0;
}
