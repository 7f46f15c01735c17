// `npm run fuzz`: the long fuzzer run. The same property-based fuzzer as `npm test`
// (tests/robustness/fuzz.test.ts), with KILN_FUZZ_SCALE (default 20) times the cases per batch and
// four batches (seeds) per surface, on KILN_BACKENDS (default native,wasm). Pick other seeds with
// KILN_FUZZ_SEED=N. A failure prints the command that replays its batch.
import { spawnSync } from 'node:child_process';
import { setup } from './setup.mjs';
import { ROOT, step } from './lib.mjs';
import { quietVulkanEnv } from './vulkan.mjs';

setup({ wasm: true });
const scale = process.env.KILN_FUZZ_SCALE ?? '20';
const backends = process.env.KILN_BACKENDS ?? 'native,wasm';
step(`fuzzer: ${scale}x the npm test budget on ${backends}`);
const r = spawnSync('npx', ['vitest', 'run', 'tests/robustness/fuzz.test.ts', ...process.argv.slice(2)], {
  stdio: 'inherit',
  cwd: ROOT,
  env: { ...process.env, ...quietVulkanEnv(), KILN_BACKENDS: backends, KILN_FUZZ_SCALE: scale },
});
process.exit(r.status ?? 1);
