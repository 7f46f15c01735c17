// The step-for-step test of data parallelism (tests/distributed/ddp.test.ts). The MNIST MLP
// (784-512-10, Adam 1e-3) trains for STEPS steps on a global batch of 128:
//   node ddp-mnist.mjs single          one process, plain DataLoader (batch 128), plain model
//   mpirun -np N node ddp-mnist.mjs ddp   N ranks, DistributedDataLoader (batch 128 / N), DDP
//   mpirun -np N node ddp-mnist.mjs ddp-after-backward   the same, all-reduce after backward
//                                         (overlap: false), to compare with the overlapped run
// Each prints {rank, losses, fingerprint, digest, syncs}: the global loss per step (ddp: the mean
// of the ranks' losses), the first weights, a SHA-256 of every trained weight's bytes and how each
// step's gradient sync went (DDP's lastSync). Ranks other than 0 start from different weights,
// so only DDP's initial broadcast can make them follow the single run.
import { createHash } from 'node:crypto';
import * as kiln from '../../../dist/index.js';

const { data, nn, optim } = kiln;
const mode = process.argv[2];
const STEPS = Number(process.argv[3] ?? 50);
const GLOBAL_BATCH = 128;
const SEED = 7;

const ddp = mode.startsWith('ddp');
const { rank, worldSize } = ddp ? kiln.distributed.init() : { rank: 0, worldSize: 1 };

// The first 12,800 training digits (100 global batches), pixels scaled to [0, 1].
const mnist = data.loadMnist();
const pixels = mnist.rows * mnist.cols;
const count = 12_800;
const x = new Float32Array(count * pixels);
for (let i = 0; i < x.length; i++) x[i] = mnist.trainImages[i] / 255;
const dataset = new data.TensorDataset(x, [pixels], mnist.trainLabels.slice(0, count));

const seed = SEED + 100 * rank;
const model = new nn.Sequential(new nn.Linear(pixels, 512, { seed }), new nn.ReLU(), new nn.Linear(512, 10, { seed: seed + 1 }));
// 1 MiB buckets: the first layer's weight (1.6 MB) fills one, the rest share another.
const net = ddp ? new kiln.distributed.DistributedDataParallel(model, { bucketBytes: 1 << 20, overlap: mode !== 'ddp-after-backward' }) : model;
const loader = ddp
  ? new kiln.distributed.DistributedDataLoader(dataset, { batchSize: GLOBAL_BATCH / worldSize, shuffle: true, seed: SEED })
  : new data.DataLoader(dataset, { batchSize: GLOBAL_BATCH, shuffle: true, seed: SEED });
const optimizer = new optim.Adam(model.parameters(), { lr: 1e-3 });

const losses = [];
const syncs = [];
let buckets = 0;
for await (const batch of loader) {
  optimizer.zeroGrad();
  const loss = kiln.tidy(() => {
    const l = kiln.crossEntropy(net.forward(batch.x), batch.y);
    l.backward();
    return l;
  });
  if (ddp) {
    buckets = net.syncGradients();
    syncs.push({ overlapped: net.lastSync.overlapped, launchedInBackward: net.lastSync.launchedInBackward });
  }
  optimizer.step();
  const global = ddp ? kiln.distributed.allReduce(loss, 'mean') : loss;
  losses.push(global.dataSync()[0]);
  kiln.dispose([batch.x, batch.y, loss, global]);
  if (losses.length === STEPS) break;
}
const fingerprint = model.parameters().map((p) => Array.from(p.dataSync().slice(0, 4)));
const digest = createHash('sha256');
for (const p of model.parameters()) digest.update(p.dataSync());
console.log(JSON.stringify({ rank, worldSize, losses, fingerprint, digest: digest.digest('hex'), buckets, syncs }));
if (ddp) kiln.distributed.finalize();
