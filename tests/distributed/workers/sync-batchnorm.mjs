// SyncBatchNorm on N ranks against one process (tests/distributed/sync-batchnorm.test.ts). Every
// rank builds the same global batch of 64 images [64, 3, 4, 4] (non-zero mean, so the variance
// is not trivially E[x^2]) for 3 training steps and:
//   - runs its shard (batch 64 / N) through a SyncBatchNorm made by convertSyncBatchNorm;
//   - runs the whole batch through a plain BatchNorm2d (the single-process reference);
//   - computes the batch-norm forward and backward in float64 from PyTorch's equations
//     (dx = w·invstd/M · (M·dy − Σdy − x̂·Σ(dy·x̂))), an independent check of both.
// The loss is sum(y · c) for a fixed c, so dy = c and the gradients are exact references.
// It prints the largest differences it saw, and checks of the differentiable allReduce.
import * as kiln from '../../../dist/index.js';

const { nn } = kiln;
const { rank, worldSize } = kiln.distributed.init();
const [N, C, H, W] = [64, 3, 4, 4];
const shard = N / worldSize;
const perImage = C * H * W;
const momentum = 0.1;
const eps = 1e-5;

let state = 12345;
const uniform = () => ((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648);
const batch = (offset, scale) => Float32Array.from({ length: N * perImage }, () => offset + scale * uniform());
const mine = (values) => values.slice(rank * shard * perImage, (rank + 1) * shard * perImage);

const diff = { output: 0, inputGrad: 0, weightGrad: 0, biasGrad: 0, runningMean: 0, runningVar: 0, equationsOutput: 0, equationsInputGrad: 0 };
const note = (key, a, b) => {
  for (let i = 0; i < a.length; i++) diff[key] = Math.max(diff[key], Math.abs(a[i] - b[i]));
};

// The source model: a Sequential with a BatchNorm2d whose state is not the default, so the
// conversion must carry weight, bias and running statistics over.
const source = new nn.Sequential(new nn.BatchNorm2d(C, { momentum, eps }));
const init = {
  '0.weight': kiln.tensor([1.5, 0.5, -1], [C]),
  '0.bias': kiln.tensor([0.2, -0.3, 0.1], [C]),
  '0.runningMean': kiln.tensor([0.5, 1, -1], [C]),
  '0.runningVar': kiln.tensor([2, 0.5, 1], [C]),
};
source.loadStateDict(init);
const reference = new nn.Sequential(new nn.BatchNorm2d(C, { momentum, eps }));
reference.loadStateDict(init);
const converted = nn.convertSyncBatchNorm(source);
const sync = converted.layers[0];
const convertedOk = converted === source && sync instanceof nn.SyncBatchNorm && [...sync.runningVar.dataSync()].join() === '2,0.5,1';

/** Batch norm of the whole batch from PyTorch's equations, in float64: [y, dx, mean, var]. */
function equations(x, dy, weight, bias) {
  const M = N * H * W;
  const y = new Float64Array(x.length);
  const dx = new Float64Array(x.length);
  const mean = [];
  const variance = [];
  for (let c = 0; c < C; c++) {
    const idx = [];
    for (let n = 0; n < N; n++) for (let p = 0; p < H * W; p++) idx.push(n * perImage + c * H * W + p);
    const mu = idx.reduce((s, i) => s + x[i], 0) / M;
    const v = idx.reduce((s, i) => s + (x[i] - mu) ** 2, 0) / M;
    const invstd = 1 / Math.sqrt(v + eps);
    const xhat = (i) => (x[i] - mu) * invstd;
    const sumDy = idx.reduce((s, i) => s + dy[i], 0);
    const sumDyXhat = idx.reduce((s, i) => s + dy[i] * xhat(i), 0);
    for (const i of idx) {
      y[i] = xhat(i) * weight[c] + bias[c];
      dx[i] = ((weight[c] * invstd) / M) * (M * dy[i] - sumDy - xhat(i) * sumDyXhat);
    }
    mean.push(mu);
    variance.push(v);
  }
  return { y, dx };
}

for (let step = 0; step < 3; step++) {
  const x = batch(3 + step, 2 + step);
  const c = batch(-0.5, 1);
  const weight = [...sync.weight.dataSync()];
  const bias = [...sync.bias.dataSync()];
  const run = (model, xValues, cValues, n) => {
    model.zeroGrad();
    const input = kiln.tensor(xValues, [n, C, H, W]).setRequiresGrad(true);
    const y = model.forward(input);
    kiln.sum(kiln.mul(y, kiln.tensor(cValues, [n, C, H, W]))).backward();
    const layer = model.layers[0];
    return { y: y.dataSync(), dx: input.grad.dataSync(), dw: layer.weight.grad, db: layer.bias.grad };
  };
  const ours = run(converted, mine(x), mine(c), shard);
  const ref = run(reference, x, c, N);
  note('output', ours.y, mine(ref.y));
  note('inputGrad', ours.dx, mine(ref.dx));
  // Each rank's parameter gradients are of its own loss term; their sum is the global one.
  note('weightGrad', kiln.distributed.allReduce(ours.dw, 'sum').dataSync(), ref.dw.dataSync());
  note('biasGrad', kiln.distributed.allReduce(ours.db, 'sum').dataSync(), ref.db.dataSync());
  const eq = equations(x, c, weight, bias);
  note('equationsOutput', ours.y, mine(eq.y));
  note('equationsInputGrad', ours.dx, mine(eq.dx));
}
note('runningMean', sync.runningMean.dataSync(), reference.layers[0].runningMean.dataSync());
note('runningVar', sync.runningVar.dataSync(), reference.layers[0].runningVar.dataSync());

// The differentiable allReduce on its own: z = allReduce(v · k_rank, 'sum'), loss = sum(z · d_rank):
// dloss/dv on this rank = k_rank · Σ_s d_s.
const v = kiln.tensor([1, 2, 3], [3]).setRequiresGrad(true);
const k = rank + 1;
const d = (r) => [r + 1, 2 * r, -r];
const z = kiln.distributed.allReduce(kiln.mul(v, k), 'sum');
kiln.sum(kiln.mul(z, kiln.tensor(d(rank), [3]))).backward();
const sumD = [0, 1, 2].map((i) => Array.from({ length: worldSize }, (_, r) => d(r)[i]).reduce((a, b) => a + b, 0));
const allReduceGrad = { got: [...v.grad.dataSync()], expected: sumD.map((s) => k * s) };

console.log(JSON.stringify({ rank, worldSize, convertedOk, diff, allReduceGrad }));
kiln.distributed.finalize();
