/**
 * Fuzzing the boundary: tens of thousands of calls with random arguments (see
 * tests/fixtures/boundary-fuzz.ts), each run in a child process so that a crash is seen as one.
 * Every call must return or throw an Error; none may panic inside Kiln (a caught panic is still a
 * bug), abort the WASM instance, or kill the process; the library must work afterwards.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { forEachBackend } from '../backends.js';

const FUZZER = fileURLToPath(new URL('../fixtures/boundary-fuzz.ts', import.meta.url));
const VITE_NODE = fileURLToPath(new URL('../../node_modules/vite-node/vite-node.mjs', import.meta.url));

interface Summary {
  calls: number;
  returned: number;
  threw: number;
  stillWorks: boolean;
  functions: number;
  badThrows: string[];
  internal: string[];
  unnamedCount: number;
}

function fuzz(backend: string, mode: 'raw' | 'api', seed: number, calls: number): Promise<Summary> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [VITE_NODE, FUZZER, backend, mode, String(seed), String(calls)], { timeout: 120_000, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      const line = stdout.split('\n').find((l) => l.startsWith('FUZZ '));
      if (!line) {
        const how = error ? `exit ${(error as { code?: number }).code ?? '?'}, signal ${(error as { signal?: string }).signal ?? 'none'}` : 'no summary';
        reject(new Error(`the fuzzed process died (${how}); replay with FUZZ_TRACE=1 vite-node tests/fixtures/boundary-fuzz.ts ${backend} ${mode} ${seed} ${calls}\n${stderr.split('\n').slice(-8).join('\n')}`));
        return;
      }
      resolve(JSON.parse(line.slice(5)) as Summary);
    });
  });
}

forEachBackend((backend) => {
  const surfaces: Array<'raw' | 'api'> = backend === 'native' ? ['raw', 'api'] : ['api'];
  for (const mode of surfaces) {
    it(`${mode === 'raw' ? 'every addon export' : 'every public API function'}: 2 x 15,000 random calls, no crash, no panic, only Errors`, async () => {
      for (const seed of [1, 2]) {
        const s = await fuzz(backend, mode, seed, 15_000);
        expect(s.functions, 'the fuzzer found the functions').toBeGreaterThan(40);
        expect(s.returned, 'some calls were valid enough to run').toBeGreaterThan(500);
        expect(s.badThrows, 'thrown values that are not Errors with a message').toEqual([]);
        expect(s.internal, 'panics caught at the boundary (bugs)').toEqual([]);
        expect(s.stillWorks, 'the library works after the run').toBe(true);
      }
    }, 240_000);
  }
});
