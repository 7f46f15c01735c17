// One side of bench/distributed/steps.mjs: times training steps of the MNIST MLP or the CNN on
// synthetic batches and splits each step into compute and gradient communication.
//   node step-worker.mjs single MODEL                 one process, the global batch
//   mpirun -np N node step-worker.mjs after MODEL      N ranks, DDP all-reducing after backward
//   mpirun -np N node step-worker.mjs overlap MODEL    N ranks, DDP overlapping it with backward
// Rank 0 prints one JSON line of medians over the timed steps (milliseconds):
//   step, compute (forward + backward + optimizer step), wait (syncGradients blocked),
//   communication (time in the all-reduces), hidden (communication that ran during backward).
import * as kiln from '../../dist/index.js';

const { nn, optim } = kiln;
const [mode, modelName] = process.argv.slice(2);
const WARMUP = 3;
const STEPS = Number(process.env.KILN_BENCH_STEPS ?? 15);
const BUCKET_BYTES = 256 << 10;
const models = {
  // 784-512-10: 407,050 parameters (1.6 MB), global batch 128.
  mlp: { batch: 128, input: [784], make: () => new nn.Sequential(new nn.Linear(784, 512), new nn.ReLU(), new nn.Linear(512, 10)) },
  // c32-p-c64-p-d128-d10 on 28x28 (bench/workloads.mjs 'cnn-train'): 225,034 parameters, batch 64.
  cnn: {
    batch: 64,
    input: [1, 28, 28],
    make: () =>
      new nn.Sequential(
        new nn.Conv2d(1, 32, 3), new nn.ReLU(), new nn.MaxPool2d(2),
        new nn.Conv2d(32, 64, 3), new nn.ReLU(), new nn.MaxPool2d(2),
        new nn.Flatten(), new nn.Linear(64 * 5 * 5, 128), new nn.ReLU(), new nn.Linear(128, 10),
      ),
  },
};
const spec = models[modelName];
if (!spec || !['single', 'after', 'overlap'].includes(mode)) throw new Error(`usage: step-worker.mjs single|after|overlap mlp|cnn, got ${mode} ${modelName}`);

const parallel = mode !== 'single';
const { rank, worldSize } = parallel ? kiln.distributed.init() : { rank: 0, worldSize: 1 };
const model = spec.make();
const net = parallel ? new kiln.distributed.DistributedDataParallel(model, { bucketBytes: BUCKET_BYTES, overlap: mode === 'overlap' }) : model;
const optimizer = new optim.Adam(model.parameters(), { lr: 1e-3 });
const batch = spec.batch / worldSize;
const x = kiln.randn([batch, ...spec.input], { seed: 1 + rank });
const y = kiln.tensor(Array.from({ length: batch }, (_, i) => (i * 7 + rank) % 10), [batch], 'int32');

const samples = { step: [], compute: [], wait: [], communication: [], hidden: [] };
for (let s = 0; s < WARMUP + STEPS; s++) {
  if (parallel) kiln.distributed.barrier();
  const t0 = performance.now();
  optimizer.zeroGrad();
  kiln.tidy(() => kiln.crossEntropy(net.forward(x), y).backward());
  const t1 = performance.now();
  if (parallel) net.syncGradients();
  const t2 = performance.now();
  optimizer.step();
  const t3 = performance.now();
  if (s < WARMUP) continue;
  samples.step.push(t3 - t0);
  samples.compute.push(t1 - t0 + (t3 - t2));
  samples.wait.push(t2 - t1);
  const communication = parallel ? net.lastSync.communicationMs : 0;
  samples.communication.push(communication);
  samples.hidden.push(Math.max(0, communication - (t2 - t1)));
}
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const out = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
const buckets = parallel ? net.lastSync.buckets : 0;
if (rank === 0) console.log(JSON.stringify({ mode, model: modelName, ranks: worldSize, batch, buckets, ...out }));
if (parallel) kiln.distributed.finalize();
