/**
 * A training step reuses its buffers: after a warm-up, repeating the same step must not make the
 * kernel map fresh pages. With glibc's moving mmap/trim thresholds the cnn-train step of the bench
 * took 3,600-8,300 minor page faults per step (15-34 MB mapped and zeroed afresh, a cause of its
 * run-to-run spread; bench/README.md); kiln-core's alloc.rs fixes the thresholds, and this keeps it.
 */
import { expect, it } from 'vitest';
import * as kiln from '../ts/index.js';
import { forEachBackend } from './backends.js';

const faults = () => process.resourceUsage().minorPageFault;

forEachBackend(
  () => {
    it('a conv training step, repeated, maps (almost) no fresh pages', () => {
      const { nn } = kiln;
      const model = new nn.Sequential(new nn.Conv2d(1, 32, 3, { seed: 1 }), new nn.ReLU(), new nn.MaxPool2d(2), new nn.Conv2d(32, 64, 3, { seed: 2 }), new nn.ReLU(), new nn.MaxPool2d(2), new nn.Flatten(), new nn.Linear(1600, 10, { seed: 3 }));
      const x = kiln.randn([64, 1, 28, 28], { seed: 4 });
      const y = kiln.tensor(Int32Array.from({ length: 64 }, (_, i) => i % 10), [64], 'int32');
      const opt = new kiln.optim.Adam(model.parameters(), { lr: 1e-3 });
      const step = () =>
        kiln.tidy(() => {
          opt.zeroGrad();
          const loss = kiln.crossEntropy(model.forward(x), y);
          loss.backward();
          opt.step();
          return loss.dataSync()[0];
        });
      try {
        for (let i = 0; i < 10; i++) step();
        const before = faults();
        const steps = 10;
        for (let i = 0; i < steps; i++) expect(Number.isFinite(step())).toBe(true);
        // Each step allocates ~20 MB of activations, columns and gradients (5,000 pages): reused,
        // a step faults in a handful of pages at most (JS-side allocations); 300 leaves room.
        expect((faults() - before) / steps, 'minor page faults per step').toBeLessThan(300);
      } finally {
        opt.dispose();
        model.dispose();
        kiln.dispose([x, y]);
      }
    });
  },
  { except: { gpu: "GPU buffers come from the device's own pool, not malloc" } },
);
