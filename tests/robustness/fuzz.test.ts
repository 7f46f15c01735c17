/**
 * The property-based fuzzer (tests/fixtures/boundary-fuzz.ts, fast-check): batches of cases, each
 * batch in a child process so that a crash is seen as one. Random calls to every addon export and
 * every public function and layer must return or throw an Error (no panic, no crash, the library
 * usable after); valid random inputs must give the results the documented rules say; the same
 * random call must end the same way on the native and the WASM backend.
 *
 * Budget: KILN_FUZZ_SCALE multiplies the cases (1 in `npm test`; `npm run fuzz` runs 20 times as
 * many, on several seeds: see docs/deployment.md). KILN_FUZZ_SEED picks the first seed.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BACKENDS, forEachBackend } from '../backends.js';

const FUZZER = fileURLToPath(new URL('../fixtures/boundary-fuzz.ts', import.meta.url));
const VITE_NODE = fileURLToPath(new URL('../../node_modules/vite-node/vite-node.mjs', import.meta.url));
const SCALE = Number(process.env.KILN_FUZZ_SCALE ?? 1);
const FIRST_SEED = Number(process.env.KILN_FUZZ_SEED ?? 1);
/** Batches per surface: each a child process with its own seed. */
const BATCHES = SCALE > 1 ? 4 : 2;
/** The seeds of one test's batches. The batches run side by side: each is its own child process,
 * and on a 2-core machine two at once take about half the wall time of one after the other. */
const SEEDS = Array.from({ length: BATCHES }, (_, b) => FIRST_SEED + b);
const CASES = { raw: 15000, api: 15000, rules: 3000, parity: 5000 };

interface Summary {
  calls: number;
  returned?: number;
  functions?: number;
  layers?: number;
  failures: string[];
  stillWorks: boolean;
  /** A function or layer (its forward or its constructor) whose error did not start with its own name (a failure: issue 13, class 8). */
  unnamed?: Record<string, string>;
  /** kiln.nn classes the run never constructed (it must reach every one). */
  layersNeverConstructed?: string[];
}

function fuzz(backend: string, mode: string, seed: number, cases: number): Promise<Summary & { seconds: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [VITE_NODE, FUZZER, backend, mode, String(seed), String(cases)], { timeout: 600_000 * SCALE, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      const line = stdout.split('\n').find((l) => l.startsWith('FUZZ '));
      if (!line) {
        const how = error ? `exit ${(error as { code?: number }).code ?? '?'}, signal ${(error as { signal?: string }).signal ?? 'none'}` : 'no summary';
        reject(new Error(`the fuzzed process died (${how}); replay with FUZZ_TRACE=1 vite-node tests/fixtures/boundary-fuzz.ts ${backend} ${mode} ${seed} ${cases}\n${stderr.split('\n').slice(-8).join('\n')}`));
        return;
      }
      resolve({ ...(JSON.parse(line.slice(5)) as Summary), seconds: (performance.now() - started) / 1000 });
    });
  });
}

forEachBackend((backend) => {
  // 'raw' on WASM too: every entry of the table reads its own arguments there as well
  // (crates/kiln-boundary's kinds), so the module is a boundary that validates, not only the TS layer.
  const modes = backend === 'gpu' ? (['api', 'rules'] as const) : (['raw', 'api', 'rules'] as const);
  for (const mode of modes) {
    const what = { raw: 'every addon export', api: 'every public function and layer', rules: 'the documented rules of ops and layers' }[mode];
    it(`${what}: ${BATCHES} batches of ${CASES[mode] * SCALE} cases`, async () => {
      const summaries = await Promise.all(SEEDS.map((seed) => fuzz(backend, mode, seed, CASES[mode] * SCALE)));
      for (const [b, s] of summaries.entries()) {
        const seed = SEEDS[b];
        console.log(`fuzz ${backend} ${mode} seed ${seed}: ${s.calls} cases in ${s.seconds.toFixed(1)} s${mode === 'api' ? ` over ${s.functions} functions and ${s.layers} kiln.nn classes` : ''}`);
        expect(s.unnamed ?? {}, 'errors that do not name the function or layer called').toEqual({});
        expect(s.failures, `failures (replay: vite-node tests/fixtures/boundary-fuzz.ts ${backend} ${mode} ${seed} ${CASES[mode] * SCALE})`).toEqual([]);
        expect(s.stillWorks, 'the library works after the run').toBe(true);
        if (mode !== 'rules') {
          expect(s.functions, 'the fuzzer found the functions').toBeGreaterThan(40);
          expect(s.returned, 'some calls were valid enough to run').toBeGreaterThan(CASES[mode] * SCALE * 0.03);
        }
        if (mode === 'api') {
          expect(s.layers, 'the fuzzer found the kiln.nn classes').toBeGreaterThanOrEqual(40);
          expect(s.layersNeverConstructed, 'kiln.nn classes the run never constructed').toEqual([]);
        }
      }
    }, 900_000 * SCALE);
  }
});

describe.runIf(BACKENDS.includes('native') && BACKENDS.includes('wasm'))('native and WASM', () => {
  it(`the same random call ends the same way on both (both return, or the same message): ${BATCHES} batches of ${CASES.parity * SCALE} cases`, async () => {
    const summaries = await Promise.all(SEEDS.map((seed) => fuzz('native', 'parity', seed, CASES.parity * SCALE)));
    for (const [b, s] of summaries.entries()) {
      const seed = SEEDS[b];
      console.log(`fuzz native-vs-wasm parity seed ${seed}: ${s.calls} cases in ${s.seconds.toFixed(1)} s`);
      expect(s.failures, `calls that end differently (replay: vite-node tests/fixtures/boundary-fuzz.ts native parity ${seed} ${CASES.parity * SCALE})`).toEqual([]);
      expect(s.stillWorks, 'the library works after the run').toBe(true);
      expect(s.calls).toBe(CASES.parity * SCALE);
    }
  }, 900_000 * SCALE);
});
