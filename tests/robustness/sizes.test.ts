/**
 * Issue 13, class 2: sizes are checked arithmetic end to end. Dimensions cross the boundary whole
 * (as f64) or are refused above what the backend addresses; products of dimensions never wrap;
 * every user-sized allocation is fallible and larger than what the process can get (MemAvailable,
 * the cgroup limit) is refused with "cannot allocate N bytes for OP" rather than an abort or the
 * OOM killer (crates/kiln-core/src/alloc.rs). Oversized requests run in child processes.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { forEachBackend } from '../backends.js';
import { SIZE_CASES } from '../fixtures/size-probe.js';

const PROBE = fileURLToPath(new URL('../fixtures/size-probe.ts', import.meta.url));
const VITE_NODE = fileURLToPath(new URL('../../node_modules/vite-node/vite-node.mjs', import.meta.url));

function probe(backend: string, which: string): Promise<{ out: string; err: string; code: number | null; signal: string | null }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [VITE_NODE, PROBE, backend, which], { timeout: 120_000 }, (error, out, err) =>
      resolve({ out, err, code: error ? ((error as { code?: number }).code ?? null) : 0, signal: error ? ((error as { signal?: string }).signal ?? null) : null }),
    ),
  );
}

forEachBackend((backend) => {
  it('a dimension of 2^32 + 5 comes back whole, or is refused as too large for the backend', () => {
    const shape = [0, 2 ** 32 + 5];
    if (backend === 'wasm') {
      expect(() => kiln.zeros(shape)).toThrow(/^zeros: dimension 4294967301 in shape \[0, 4294967301\] is larger than this backend can address \(at most 4294967295 per dimension on a 32-bit build\)/);
    } else {
      const t = kiln.zeros(shape);
      expect(t.shape).toEqual(shape);
      t.dispose();
    }
    expect(() => kiln.zeros([2 ** 53])).toThrow(/zeros: dimension 9007199254740992 .* larger than this backend can address/);
  });

  it("reshape's element count cannot wrap to the right number", () => {
    // (2^32+1)(2^32-1)(2^32+1)(2^32-1) = (2^64-1)^2, which is 1 modulo 2^64.
    const x = kiln.tensor([7]);
    expect(() => x.reshape([4294967297, 4294967295, 4294967297, 4294967295])).toThrow(/^reshape: (cannot reshape \[1\]|.*larger than this backend can address)/);
    x.dispose();
  });

  // Each probe is its own child process and touches nothing in this one, so they run side by side
  // (it.concurrent: up to vitest's maxConcurrency at once), with the test context's own expect.
  for (const which of Object.keys(SIZE_CASES)) {
    it.concurrent(`${which}: an Error "cannot allocate ...", not an abort; the backend works afterwards`, async ({ expect }) => {
      const r = await probe(backend, which);
      const line = r.out.split('\n').find((l) => l.startsWith('SIZE '));
      expect(line, `the child printed no result (exit ${r.code}, signal ${r.signal}):\n${r.err.slice(-1500)}`).toBeDefined();
      const { threw, message, stillWorks } = JSON.parse(line!.slice(5)) as { threw: boolean; message: string; stillWorks: boolean };
      expect({ threw, stillWorks }).toEqual({ threw: true, stillWorks: true });
      // The GPU refuses a buffer past its largest storage binding before kiln-core allocates.
      expect(message).toMatch(backend === 'gpu' ? /cannot allocate \d+ bytes for \w+|a tensor of \d+ bytes exceeds this GPU's largest storage binding/ : /cannot allocate \d+ bytes for \w+/);
      expect(message).not.toMatch(/internal error/i);
    }, 130_000);
  }
});
