import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // Each test file runs in its own child process: the native addon keeps process-wide state
    // (live-buffer counters behind memory(), the SIMD level, the seeded generator), so files must
    // not share a process, and an abort inside the addon fails one file instead of the whole run.
    pool: 'forks',
    // gc() between backends (tests/backends.ts): the native and GPU backends share one tensor
    // registry, so garbage one backend's tests left to the FinalizationRegistry must be freed
    // before the next backend's tests count tensors.
    poolOptions: { forks: { execArgv: ['--expose-gc'] } },
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
