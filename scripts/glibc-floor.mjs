// The oldest glibc a Linux binary runs on: the highest GLIBC_x.y version among the symbols it
// imports (a dynamic linker refuses a library that needs a newer one: "version `GLIBC_2.35' not
// found"). The published linux-*-gnu addons are linked against napi-rs's glibc 2.17 sysroot
// (scripts/napi-cross.mjs), so they load on every glibc distribution napi-rs's own packages do
// (RHEL/CentOS 7 and later); `npm run check:install` fails if a packed binary needs more.
//
//   node scripts/glibc-floor.mjs npm/linux-x64-gnu/kiln.linux-x64-gnu.node    # prints e.g. 2.17
import { spawnSync } from 'node:child_process';

/** The glibc the published gnu binaries promise (docs/packaging.md, "Targets"). */
export const GLIBC_FLOOR = '2.17';

/** Compares dotted versions numerically: '2.9' < '2.17'. */
export function compareVersions(a, b) {
  const [x, y] = [a.split('.').map(Number), b.split('.').map(Number)];
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
  }
  return 0;
}

/**
 * The glibc versions a binary's imported symbols require, highest first, with one symbol that
 * needs each (the one to look at when the floor rises), from `readelf --dyn-syms` (binutils).
 */
export function glibcRequirements(file) {
  const r = spawnSync('readelf', ['--dyn-syms', '--wide', file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`glibc-floor: readelf could not read ${file}: ${r.stderr || r.error}`);
  const bySymbol = new Map();
  // An import reads "... UND pthread_create@GLIBC_2.34 (3)"; defined symbols carry no UND.
  for (const [, symbol, version] of r.stdout.matchAll(/\bUND\s+([^\s@]+)@GLIBC_([\d.]+)/g)) {
    if (!bySymbol.has(version)) bySymbol.set(version, symbol);
  }
  return [...bySymbol].map(([version, symbol]) => ({ version, symbol })).sort((a, b) => compareVersions(b.version, a.version));
}

/** The highest glibc version `file` needs ('2.17'), or null if it imports nothing versioned from glibc (musl builds). */
export function glibcFloor(file) {
  return glibcRequirements(file)[0]?.version ?? null;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const file of process.argv.slice(2)) {
    const needs = glibcRequirements(file);
    console.log(`${file}: glibc ${needs[0]?.version ?? '(none)'}${needs[0] ? ` (e.g. ${needs[0].symbol})` : ''}`);
  }
}
