// scripts/glibc-floor.mjs reads the oldest glibc a binary loads on; check:install relies on it to
// keep the published linux-x64-gnu addon at glibc 2.17. Checked here against binutils' objdump
// (an independent reader of the same version table) on this checkout's addon.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compareVersions, glibcFloor, glibcRequirements, GLIBC_FLOOR } from '../../scripts/glibc-floor.mjs';

const ADDON = fileURLToPath(new URL('../../npm/linux-x64-gnu/kiln.linux-x64-gnu.node', import.meta.url));

describe('glibc floor', () => {
  it('orders versions numerically', () => {
    expect(compareVersions('2.9', '2.17')).toBeLessThan(0);
    expect(compareVersions('2.35', '2.17')).toBeGreaterThan(0);
    expect(compareVersions('2.2.5', '2.2')).toBeGreaterThan(0);
    expect(compareVersions('2.17', '2.17')).toBe(0);
    expect(GLIBC_FLOOR).toBe('2.17');
  });

  it('reads the same highest GLIBC_ version as objdump -T', () => {
    const objdump = spawnSync('objdump', ['-T', ADDON], { encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(objdump.status).toBe(0);
    const versions = [...objdump.stdout.matchAll(/\bGLIBC_([\d.]+)\)?\s/g)].map((m) => m[1]);
    const highest = versions.sort(compareVersions).at(-1);
    expect(glibcFloor(ADDON)).toBe(highest);
    const [first] = glibcRequirements(ADDON);
    // The symbol named for the floor really is imported at that version.
    expect(objdump.stdout).toMatch(new RegExp(`GLIBC_${first.version.replace(/\./g, '\\.')}\\)?\\s+${first.symbol}\\b`));
  });

  it('names the file it cannot read', () => {
    expect(() => glibcFloor('/nonexistent/file.node')).toThrow(/glibc-floor: readelf could not read/);
  });
});
