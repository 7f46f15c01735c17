/**
 * Runs the shared suites in a page on Kiln's WebGPU backend with @vitest/runner (the runner vitest
 * itself uses): shared-suites-webgpu.test.ts bundles this file with the suites (each a dynamic
 * import, so Kiln is one module shared by all of them), serves it, and calls `runSuites(files)`.
 * Resolves to one row per test: its file, its full name, its state and its error.
 */
import { startTests, type File, type Task, type VitestRunner } from '@vitest/runner';
import * as kiln from '../../../ts/browser.js';

declare const SUITES: Record<string, () => Promise<unknown>>;

export interface TestRow {
  file: string;
  name: string;
  state: string;
  error?: string;
  ms?: number;
}

function rows(task: Task, file: string, prefix: string[], out: TestRow[]): void {
  const name = task.type === 'suite' && task.file === task ? [] : [...prefix, task.name];
  if (task.type === 'suite') {
    for (const t of task.tasks) rows(t, file, name, out);
    // A suite that failed without running its tests (a beforeAll threw) fails as a whole.
    if (task.result?.state === 'fail' && task.tasks.length === 0) out.push({ file, name: name.join(' > ') || '(file)', state: 'fail', error: task.result.errors?.map((e) => e.message).join('\n') });
    return;
  }
  const errors = task.result?.errors?.map((e) => `${e.message}${e.stack ? `\n${e.stack.split('\n').slice(1, 4).join('\n')}` : ''}`);
  out.push({ file, name: name.join(' > '), state: task.mode === 'skip' || task.mode === 'todo' ? 'skip' : (task.result?.state ?? 'none'), error: errors?.join('\n'), ms: task.result?.duration });
}

/** Runs the suites `files` (keys of SUITES) on the WebGPU backend, one after the other. */
export async function runSuites(files: string[], progress: (line: string) => void = () => {}): Promise<TestRow[]> {
  await kiln.init();
  if ((await kiln.setBackend('gpu')) !== 'gpu') throw new Error('page runner: no WebGPU adapter (setBackend fell back to WASM)');
  const adapter = kiln.gpuInfo();
  progress(`WebGPU adapter: ${adapter.adapter} (software: ${adapter.software})`);
  const runner: VitestRunner = {
    config: {
      root: '/',
      setupFiles: [],
      name: 'webgpu-page',
      passWithNoTests: true,
      sequence: { shuffle: false, concurrent: false, seed: 0, hooks: 'stack', setupFiles: 'list' },
      maxConcurrency: 1,
      testTimeout: 600_000,
      hookTimeout: 600_000,
      retry: 0,
      includeTaskLocation: false,
      diffOptions: undefined,
    } as VitestRunner['config'],
    importFile: async (path) => {
      await SUITES[path]();
    },
    onAfterRunFiles: () => {},
    onTaskUpdate: async () => {},
  };
  const out: TestRow[] = [];
  for (const file of files) {
    const t0 = performance.now();
    const [result] = (await startTests([file], runner)) as File[];
    const before = out.length;
    rows(result, file, [], out);
    if (result.result?.state === 'fail' && out.length === before) out.push({ file, name: '(file)', state: 'fail', error: result.result.errors?.map((e) => e.message).join('\n') });
    const mine = out.slice(before);
    // Where the time goes: the kernels compiled so far (each compiled once per page) and reads.
    const { pipelines, readbacks } = kiln.gpuInfo();
    progress(`${file}: ${mine.filter((r) => r.state === 'pass').length} passed, ${mine.filter((r) => r.state === 'fail').length} failed, ${mine.filter((r) => r.state === 'skip').length} skipped (${((performance.now() - t0) / 1000).toFixed(1)} s; ${pipelines} kernels compiled, ${readbacks} reads so far)`);
    for (const r of mine.filter((r) => r.state === 'fail')) progress(`  failed: ${r.name}: ${(r.error ?? '').split('\n')[0]}`);
    for (const r of mine.filter((r) => (r.ms ?? 0) > 10_000)) progress(`  slow: ${r.name}: ${((r.ms ?? 0) / 1000).toFixed(1)} s`);
    const g0 = performance.now();
    (globalThis as { gc?: () => void }).gc?.();
    await kiln.synchronize();
    progress(`  gc + synchronize after it: ${((performance.now() - g0) / 1000).toFixed(1)} s`);
  }
  return out;
}

(globalThis as Record<string, unknown>).kilnSuites = { runSuites };
