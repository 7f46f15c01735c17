// fit({ distributed: true }) on N ranks against plain fit in one process
// (tests/distributed/fit.test.ts): 2 epochs of the MNIST MLP on 2,560 digits (global batch 128),
// validation on 1,000 more. Prints {rank, epochs, printed}: the per-epoch logs and how many
// characters fit wrote to stdout/stderr on this rank (only rank 0 may show progress).
import * as kiln from '../../../dist/index.js';

const { data, nn, optim } = kiln;
const ddp = process.argv[2] === 'ddp';
const { rank, worldSize } = ddp ? kiln.distributed.init() : { rank: 0, worldSize: 1 };

const mnist = data.loadMnist();
const pixels = mnist.rows * mnist.cols;
const part = (from, count) => {
  const x = new Float32Array(count * pixels);
  for (let i = 0; i < x.length; i++) x[i] = mnist.trainImages[from * pixels + i] / 255;
  return new data.TensorDataset(x, [pixels], mnist.trainLabels.slice(from, from + count));
};
const [trainSet, valSet] = [part(0, 2560), part(2560, 1000)];
const Loader = ddp ? kiln.distributed.DistributedDataLoader : data.DataLoader;
const trainLoader = new Loader(trainSet, { batchSize: 128 / worldSize, shuffle: true, seed: 3 });
const valLoader = new Loader(valSet, { batchSize: 500 / worldSize });

const mlp = new nn.Sequential(new nn.Linear(pixels, 64, { seed: 5 }), new nn.ReLU(), new nn.Linear(64, 10, { seed: 6 }));
const model = ddp ? new kiln.distributed.DistributedDataParallel(mlp) : mlp;
const optimizer = new optim.Adam(mlp.parameters(), { lr: 1e-3 });

let printed = 0;
const count = (stream) => {
  const write = stream.write.bind(stream);
  stream.write = (chunk, ...rest) => ((printed += String(chunk).length), write(chunk, ...rest));
};
count(process.stdout);
count(process.stderr);
const history = await kiln.fit(model, trainLoader, {
  epochs: 2,
  loss: (out, y) => kiln.crossEntropy(out, y),
  optimizer,
  metrics: ['accuracy'],
  validationData: valLoader,
  distributed: ddp,
});
console.log(JSON.stringify({ rank, epochs: history.epochs, printed }));
