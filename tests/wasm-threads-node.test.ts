/**
 * `setBackend('wasm', { threads })` in Node (ts/backends/wasm.ts, wasm-node-threads.ts): Kiln's
 * threaded WASM build on worker_threads. The workers take chunks of the kernels (the pool's
 * counter says so), and matmul, a convolution and the first loss of CNN training are exactly the
 * single-threaded build's (the trained parameters and the losses after an update within float32 rounding: see below); the thread count changes on a live backend without losing tensors;
 * bad options are refused naming setBackend. Child processes: the WASM build is chosen when the
 * WASM module loads, once per process.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as kiln from '../ts/index.js';
// @ts-expect-error: a plain .mjs fixture without type declarations
import { WORKLOAD_SIZES } from './fixtures/threads-workload.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Runs an ES module script in a child Node from the repository root; returns its last stdout line as JSON. */
function child(script: string, env: Record<string, string> = {}): any {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 240_000 });
  if (r.status !== 0) throw new Error(`the child failed (${r.status}):\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

/** The child's preamble: Kiln, the engine (for the pool's counters) and the shared workload. */
const PREAMBLE = `
const kiln = await import('./dist/index.js');
const { backend } = await import('./dist/engine.js');
const fixture = await import('./tests/fixtures/threads-workload.mjs');
const workload = () => fixture.workload(kiln);
const { same, worst } = fixture;
const chunks = () => backend().impl.poolWorkerChunks?.() ?? 0;
`;

describe("setBackend('wasm', { threads }) in Node", () => {
  it('runs the threaded build on worker_threads with the single-threaded results and frees its tensors', () => {
    const got = child(`${PREAMBLE}
kiln.setBackend('wasm');                       // the single-threaded (relaxed SIMD) build
const single = { ...workload(), threads: kiln.numThreads() };
kiln.setBackend('wasm', { threads: 2 });       // no WASM tensor alive: the threaded build takes over
const c0 = chunks();
const two = { ...workload(), threads: kiln.numThreads(), workers: backend().impl.poolWorkers() };
two.chunks = chunks() - c0;
kiln.setBackend('wasm', { threads: 1 });       // the same instance, capped at the calling thread
const c1 = chunks();
const one = { ...workload(), threads: kiln.numThreads() };
one.chunks = chunks() - c1;
kiln.setBackend('native');
const native = workload();
console.log(JSON.stringify({
  threads: [single.threads, two.threads, one.threads], workers: two.workers, chunks: [two.chunks, one.chunks],
  leaked: [single.leaked, two.leaked, one.leaked],
  sameForward: same(two.forward, single.forward), sameFirstLoss: same(two.losses.slice(0, 1), single.losses.slice(0, 1)), lossesGap: worst(two.losses, single.losses), paramsGap: worst(two.params, single.params),
  oneSame: same(one.forward, single.forward) && same(one.params, single.params),
  lengths: [two.forward.length, two.params.length],
  losses: two.losses, nativeForward: worst(two.forward, native.forward), nativeParams: worst(two.params, native.params),
}));
`);
    expect(got.threads).toEqual([1, 2, 1]);
    expect(got.workers).toBe(1);
    // The worker took chunks of the kernels on 2 threads, none once capped at 1.
    expect(got.chunks[0]).toBeGreaterThan(0);
    expect(got.chunks[1]).toBe(0);
    expect(got.lengths).toEqual(WORKLOAD_SIZES);
    // The forward kernels split work into chunks, never a sum: identical to the single-threaded
    // build, and so is the first loss. The parameters after the steps are not, quite: conv2d's
    // weight gradient sums one partial accumulator per worker (device/cpu/conv/engine.rs
    // weight_grad), and which worker's accumulator a chunk lands in depends on timing, so its
    // rounding follows the thread count and the schedule (natively too); the gap stays at float32
    // rounding, and so does the losses' after an update (a CI run under load saw them differ).
    expect(got.sameForward).toBe(true);
    expect(got.sameFirstLoss).toBe(true);
    expect(got.lossesGap).toBeLessThan(1e-5);
    expect(got.paramsGap).toBeLessThan(1e-6);
    // One thread of the threaded build is the single-threaded build, bit for bit.
    expect(got.oneSame).toBe(true);
    expect(got.leaked).toEqual([0, 0, 0]);
    // And an independent implementation (the native backend) agrees.
    expect(got.losses.every((l: number) => Number.isFinite(l) && l > 0)).toBe(true);
    expect(got.nativeForward).toBeLessThan(1e-4);
    expect(got.nativeParams).toBeLessThan(1e-4);
  }, 300_000);

  it('changes the thread count of a live backend, keeping its tensors, and refuses the switch of build while tensors live', () => {
    const got = child(`${PREAMBLE}
kiln.setBackend('wasm', { threads: 2 });
const t = kiln.randn([512, 512], { seed: 9 });
const want = [...kiln.tidy(() => t.matmul(t).dataSync())];
kiln.setBackend('wasm', { threads: 3 });       // one more worker joins the same instance
const three = { threads: kiln.numThreads(), workers: backend().impl.poolWorkers() };
const c = chunks();
const again = [...kiln.tidy(() => t.matmul(t).dataSync())];
three.chunks = chunks() - c;
kiln.setBackend('wasm', { threads: 'auto' });
const auto = kiln.numThreads();
t.dispose();
console.log(JSON.stringify({ three, auto, same: same(again, want), cores: (await import('node:os')).availableParallelism() }));
`);
    expect(got.three).toMatchObject({ threads: 3, workers: 2 });
    expect(got.three.chunks).toBeGreaterThan(0);
    expect(got.same).toBe(true);
    expect(got.auto).toBe(got.cores); // 'auto' is os.availableParallelism()

    const refused = child(`${PREAMBLE}
kiln.setBackend('wasm');
const t = kiln.ones([2, 3]);
let error = '';
try { kiln.setBackend('wasm', { threads: 2 }); } catch (e) { error = e.message; }
const stillWorks = [...kiln.tidy(() => t.add(1).dataSync())];
const threads = kiln.numThreads();
t.dispose();
kiln.setBackend('wasm', { threads: 2 });       // nothing alive now: the switch happens
console.log(JSON.stringify({ error, stillWorks, threads, after: kiln.numThreads() }));
`);
    expect(refused.error).toMatch(/^setBackend\('wasm', \{ threads: 2 \}\): 2 threads need the threaded WASM build.*holds 1 live tensor.*dispose them first/);
    expect(refused.stillWorks).toEqual([2, 2, 2, 2, 2, 2]);
    expect(refused.threads).toBe(1);
    expect(refused.after).toBe(2);
  }, 300_000);

  it('KILN_WASM_VARIANT=simd (a testing switch) cannot be combined with threads', () => {
    expect(() => child(`${PREAMBLE}\nkiln.setBackend('wasm', { threads: 2 });\nconsole.log('{}');`, { KILN_WASM_VARIANT: 'simd' })).toThrow(
      /setBackend\('wasm', \{ threads: 2 \}\): KILN_WASM_VARIANT=simd forces a single-threaded build; unset it to run threads/,
    );
  }, 120_000);

  it('refuses bad options with errors naming setBackend', () => {
    const bad: Array<[unknown, unknown, RegExp]> = [
      ['wasm', { threads: 0 }, /^setBackend\('wasm', \{ threads: 0 \}\): threads must be an integer >= 1 or 'auto', got 0 \(number\)/],
      ['wasm', { threads: 1.5 }, /threads must be an integer >= 1 or 'auto', got 1\.5 \(number\)/],
      ['wasm', { threads: '2' }, /^setBackend\('wasm', \{ threads: '2' \}\): threads must be an integer >= 1 or 'auto', got '2' \(string\)/],
      ['wasm', { threads: Number.NaN }, /got NaN \(number\)/],
      ['wasm', { thread: 2 }, /^setBackend\('wasm'\): unknown option\(s\) 'thread' \(setBackend takes \{ threads \}\)/],
      ['wasm', 2, /^setBackend: options must be an object such as \{ threads: 2 \}, got number/],
      ['native', { threads: 2 }, /^setBackend\('native', \{ threads: 2 \}\): the threads option is for the 'wasm' backend; the native backend's CPU threads are set by RAYON_NUM_THREADS/],
      ['gpu', { threads: 2 }, /^setBackend\('gpu', \{ threads: 2 \}\): the threads option is for the 'wasm' backend/],
    ];
    const active = kiln.getBackend();
    for (const [name, options, message] of bad) {
      expect(() => kiln.setBackend(name as kiln.BackendName, options as kiln.BackendOptions)).toThrow(message);
    }
    // Nothing changed.
    expect(kiln.getBackend()).toBe(active);
  });
});
