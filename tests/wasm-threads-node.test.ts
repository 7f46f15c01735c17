/**
 * Kiln's threaded WASM build in Node (ts/backends/wasm-node-threads.ts): with
 * KILN_WASM_VARIANT=threads the wasm backend runs on worker_threads, which take chunks of the
 * kernels (the pool's counter says so), and its results equal the single-threaded build's. A
 * child process, since the variant is chosen when the WASM module loads.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const SCRIPT = `
const kiln = await import('./dist/index.js');
const { backend } = await import('./dist/engine.js');
const run = () => kiln.tidy(() => {
  const x = kiln.randn([4, 16, 32, 32], { seed: 1 });
  const w = kiln.randn([32, 16, 3, 3], { seed: 2 });
  const a = kiln.randn([300, 200], { seed: 3 });
  const b = kiln.randn([200, 250], { seed: 4 });
  return [...kiln.conv2d(x, w, { padding: 1, activation: 'relu' }).dataSync(), ...kiln.matmul(a, b).dataSync()];
});
kiln.setBackend('wasm');
const threads = kiln.numThreads();
const impl = backend().impl;
const before = impl.poolWorkerChunks?.() ?? -1;
const got = run();
const chunks = (impl.poolWorkerChunks?.() ?? -1) - before;
kiln.setBackend('native');
const want = run();
let worst = 0;
want.forEach((v, i) => (worst = Math.max(worst, Math.abs(got[i] - v) / (1 + Math.abs(v)))));
console.log(JSON.stringify({ threads, workers: impl.poolWorkers?.() ?? -1, chunks, worst, length: got.length }));
`;

function runWith(env: Record<string, string>): { threads: number; workers: number; chunks: number; worst: number; length: number } {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', SCRIPT], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  if (r.status !== 0) throw new Error(`the child failed (${r.status}):\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

it('KILN_WASM_VARIANT=threads runs the wasm backend on worker_threads, with the native results', () => {
  const threaded = runWith({ KILN_WASM_VARIANT: 'threads', KILN_WASM_THREADS: '2' });
  expect(threaded.threads).toBe(2);
  expect(threaded.workers).toBe(1);
  // The worker took part in the kernels, and the results are the native backend's.
  expect(threaded.chunks).toBeGreaterThan(0);
  expect(threaded.length).toBe(4 * 32 * 32 * 32 + 300 * 250);
  expect(threaded.worst).toBeLessThan(1e-4);
}, 180_000);

it('KILN_WASM_THREADS must be a whole number >= 1', () => {
  expect(() => runWith({ KILN_WASM_VARIANT: 'threads', KILN_WASM_THREADS: 'two' })).toThrow(/KILN_WASM_THREADS must be an integer >= 1, got 'two'/);
}, 180_000);
