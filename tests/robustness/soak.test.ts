/**
 * The soak test: 6,000 training steps in a fresh process. kiln.memory() must be exactly flat after
 * the first samples (the optimizer state is made on the first step), and the process's RSS may not
 * grow by more than 8 MB from step 2,000 to the end (the WASM heap reaches its working size in the first ~1,500 steps) (allocator noise is a few hundred KB; a leak
 * of one small tensor per step would be far more).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { forEachBackend, heavyIt } from '../backends.js';

const SOAK = fileURLToPath(new URL('../fixtures/soak.ts', import.meta.url));
const VITE_NODE = fileURLToPath(new URL('../../node_modules/vite-node/vite-node.mjs', import.meta.url));

forEachBackend((backend) => {
  const heavy = heavyIt(backend);
  heavy('6,000 training steps: kiln.memory() exactly flat, RSS flat within 8 MB', async () => {
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['--expose-gc', VITE_NODE, SOAK, backend, '6000'], { timeout: 300_000 }, (error, out, err) => (error ? reject(new Error(`${error.message}\n${err}`)) : resolve(out))),
    );
    const line = stdout.split('\n').find((l) => l.startsWith('SOAK '));
    expect(line, 'the soak process printed its samples').toBeDefined();
    const { samples } = JSON.parse(line!.slice(5)) as { samples: Array<{ step: number; rss: number; numTensors: number; numBytes: number }> };
    const first = samples[0];
    for (const s of samples) {
      expect({ step: s.step, numTensors: s.numTensors, numBytes: s.numBytes }).toEqual({ step: s.step, numTensors: first.numTensors, numBytes: first.numBytes });
    }
    const warm = samples.find((s) => s.step === 2000)!;
    const last = samples[samples.length - 1];
    const growthMb = (last.rss - warm.rss) / 2 ** 20;
    expect(growthMb, `RSS grew ${growthMb.toFixed(2)} MB from step 2,000 to ${last.step}`).toBeLessThan(8);
  }, 320_000);
});
