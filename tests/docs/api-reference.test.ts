/**
 * The API reference (`npm run docs`: TypeDoc over ts/index.ts and ts/browser.ts, configured in
 * typedoc.json) builds without a warning: every public export, class member and interface has a
 * doc comment (TypeDoc's notDocumented validation), every referenced type is exported, every
 * {@link} resolves; typedoc.json turns warnings into errors.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('API reference (TypeDoc)', () => {
  it('builds with no warnings and documents both entries', () => {
    const out = mkdtempSync(join(tmpdir(), 'kiln-api-'));
    try {
      const typedoc = join(ROOT, 'node_modules', 'typedoc', 'bin', 'typedoc');
      const r = spawnSync(process.execPath, [typedoc, '--out', out], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
      const log = `${r.stdout}${r.stderr}`;
      expect(log.split('\n').filter((l) => /warning|error/i.test(l))).toEqual([]);
      expect(r.status, log).toBe(0);
      // Both entries have pages, with the functions this issue added to the browser one.
      const browserModule = readFileSync(join(out, 'modules', 'browser.html'), 'utf8');
      for (const name of ['init', 'saveModel', 'loadModel', 'train', 'data']) expect(browserModule).toContain(`>${name}<`);
      expect(existsSync(join(out, 'modules', 'index.html'))).toBe(true);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 240_000);
});
