// The README's Install section, followed literally in an empty project (scripts/check-install.mjs
// without its browser half, which `npm run check:install` adds): pack, install the tarballs, run
// the ES module and CommonJS snippets and the threaded WASM one (`setBackend('wasm', { threads:
// 2 })` from the installed package), a strict TypeScript check, then the WASM fallback with the
// installed binary corrupt and missing.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('npm pack, install and use', () => {
  it('installs from the tarballs and runs as the README says, falling back to WASM without its binary', async () => {
    // Asynchronous: a synchronous child would block this worker's messages to vitest for minutes.
    const child = spawn(process.execPath, ['scripts/check-install.mjs', '--no-browser'], { cwd: ROOT });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(out).not.toMatch(/^FAIL/m);
    for (const line of ['node app.mjs prints', 'node app.cjs prints', 'node threads.mjs prints "wasm 2 ', 'kiln-ml tarball has bindings/wasm/pkg-web/kiln_wasm_threads.js', 'tsc --strict', 'corrupt binary: node app.mjs runs on WASM', 'platform package not installed: node app.cjs runs on WASM']) {
      expect(out).toMatch(new RegExp(`^ok +${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`, 'm'));
    }
    expect(out).toContain('install check: all passed');
    expect(status).toBe(0);
  }, 900_000);
});
