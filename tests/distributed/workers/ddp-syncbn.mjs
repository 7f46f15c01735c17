// DDP with overlap around a CNN whose BatchNorm2d layers became SyncBatchNorm
// (tests/distributed/sync-batchnorm.test.ts): SyncBatchNorm's all-reduces run inside backward on
// the JS thread while the communication thread all-reduces gradient buckets, so this checks that
// the two take turns (no deadlock, every rank in the same order) and that the result equals the
// after-backward path bit for bit.
//   mpirun -np N node ddp-syncbn.mjs overlap|after STEPS [MICROBATCHES]
// With MICROBATCHES > 1, each step runs that many backward passes before syncGradients
// (gradient accumulation): the overlapped reducer must notice and fall back to after-backward.
import { createHash } from 'node:crypto';
import * as kiln from '../../../dist/index.js';

const { nn, optim } = kiln;
const [mode, steps, micro] = [process.argv[2], Number(process.argv[3] ?? 5), Number(process.argv[4] ?? 1)];
const { rank } = kiln.distributed.init();
const model = nn.convertSyncBatchNorm(
  new nn.Sequential(
    new nn.Conv2d(1, 8, 3, { seed: 1 }), new nn.BatchNorm2d(8), new nn.ReLU(),
    new nn.Conv2d(8, 8, 3, { seed: 2 }), new nn.BatchNorm2d(8), new nn.ReLU(),
    new nn.Flatten(), new nn.Linear(8 * 8 * 8, 10, { seed: 3 }),
  ),
);
// 4 KiB buckets: several, so some are all-reduced while backward still has SyncBatchNorms to pass.
const net = new kiln.distributed.DistributedDataParallel(model, { bucketBytes: 4096, overlap: mode === 'overlap' });
const optimizer = new optim.SGD(model.parameters(), { lr: 0.05 });
const losses = [];
const launched = [];
const overlapped = [];
for (let s = 0; s < steps; s++) {
  optimizer.zeroGrad();
  let total = 0;
  for (let m = 0; m < micro; m++) {
    const x = kiln.randn([8, 1, 12, 12], { seed: 100 * s + 10 * m + rank });
    const y = kiln.tensor(Array.from({ length: 8 }, (_, i) => (i + s + m + rank) % 10), [8], 'int32');
    const loss = kiln.tidy(() => {
      const l = kiln.crossEntropy(net.forward(x), y);
      l.backward();
      return l;
    });
    total += loss.dataSync()[0];
    kiln.dispose([x, y, loss]);
  }
  net.syncGradients();
  launched.push(net.lastSync.launchedInBackward);
  overlapped.push(net.lastSync.overlapped);
  optimizer.step();
  losses.push(total);
}
const digest = createHash('sha256');
for (const [, t] of Object.entries(model.stateDict())) digest.update(t.dataSync());
const buckets = net.lastSync.buckets;
// Disposing frees the model and the reducer (its hooks); a sync afterwards names the problem.
net.dispose();
let afterDispose = '';
try {
  net.syncGradients();
} catch (e) {
  afterDispose = e.message;
}
console.log(JSON.stringify({ rank, losses, digest: digest.digest('hex'), buckets, launched, overlapped, afterDispose }));
kiln.distributed.finalize();
