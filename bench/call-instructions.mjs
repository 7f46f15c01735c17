// The cost of one small op's call through the public API, in CPU instructions (not seconds: a
// count does not move with the load of a shared machine). Runs `add` of two float32 [4] tensors
// plus the dispose of its result, N times, under callgrind, for N and 2N calls; the difference
// divided by N is the per-call count, start-up and JIT warm-up cancelled out.
//
//   node bench/call-instructions.mjs [native|wasm] [N]     (default wasm 100000)
//   KILN_DIST=dist-before node bench/call-instructions.mjs  (a copy compiled with tsc --outDir dist-before)
//
// Needs valgrind and the built dist/ (npm run setup). Used to check that the argument checks of
// the WASM guard (ts/backends/wasm-guard.ts) add next to nothing to the hot entries.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [mode, backendArg, nArg] = process.argv.slice(2);

if (mode === '--child') {
  // The measured process: N adds on the named backend.
  // KILN_DIST: another compiled copy of ts/ beside dist/ (a before/after comparison).
  const kiln = await import(`../${process.env.KILN_DIST ?? 'dist'}/index.js`);
  kiln.setBackend(backendArg);
  const a = kiln.tensor([1, 2, 3, 4]);
  const b = kiln.tensor([5, 6, 7, 8]);
  for (let i = 0, n = Number(nArg); i < n; i++) kiln.add(a, b).dispose();
  a.dispose();
  b.dispose();
} else {
  const backend = mode ?? 'wasm';
  const n = Number(backendArg ?? 100000);
  const dir = mkdtempSync(join(tmpdir(), 'kiln-callgrind-'));
  const instructions = (calls) => {
    const out = join(dir, `callgrind.${calls}`);
    execFileSync('valgrind', ['--tool=callgrind', `--callgrind-out-file=${out}`, process.execPath, new URL(import.meta.url).pathname, '--child', backend, String(calls)], { stdio: ['ignore', 'ignore', 'pipe'] });
    const summary = /^summary: (\d+)/m.exec(readFileSync(out, 'utf8'));
    if (!summary) throw new Error(`no summary line in ${out}`);
    return Number(summary[1]);
  };
  const once = instructions(n);
  const twice = instructions(2 * n);
  rmSync(dir, { recursive: true, force: true });
  console.log(`${backend}: add f32[4] + dispose: ${Math.round((twice - once) / n)} instructions per call (callgrind, ${n} and ${2 * n} calls: ${once} and ${twice} instructions)`);
}
