/**
 * Temporary files and directories that a crashed save left behind (Node only). Every writer in
 * io/ names its temporaries `.<target>.<pid>.<random hex>.tmp` next to the target, so the next
 * write of the same target can tell which are abandoned: those whose process no longer exists.
 * Those of our own process are abandoned too, since writes here are synchronous and none of ours
 * can still be in progress when the next one starts. A temporary of a live process (another
 * program saving the same target right now) is left alone.
 */

import fs from 'node:fs';
import path from 'node:path';

/** Builds the name of a temporary for `target` (a base name) in the shared pattern. */
export function temporaryName(target: string, random: string): string {
  return `.${target}.${process.pid}.${random}.tmp`;
}

function processIsAlive(pid: number): boolean {
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Removes the abandoned temporaries of `target` (a base name) in `dir`; returns how many. Best
 * effort: a temporary that cannot be removed (permissions, a race with another cleaner) is skipped,
 * since failing the save over old litter would be worse than leaving it.
 */
export function removeStaleTemporaries(dir: string, target: string): number {
  const pattern = new RegExp(`^\\.${escapeRegExp(target)}\\.(\\d+)\\.[0-9a-f]+\\.tmp$`);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    const m = pattern.exec(name);
    if (m === null || processIsAlive(Number(m[1]))) continue;
    try {
      fs.rmSync(path.join(dir, name), { recursive: true, force: true });
      removed++;
    } catch {
      /* see above: best effort */
    }
  }
  return removed;
}
