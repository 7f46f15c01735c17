import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // Each test file runs in its own child process: the native addon keeps process-wide state
    // (live-buffer counters behind memory(), the SIMD level, the seeded generator), so files must
    // not share a process, and an abort inside the addon fails one file instead of the whole run.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
