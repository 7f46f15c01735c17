// A small ResNet on MNIST: a 3x3 stem, three stages of nn.BasicBlock (conv3x3-BN-ReLU-conv3x3-BN
// plus the identity, or a 1x1 stride-2 projection where the shape changes), global average
// pooling and a linear classifier. Light augmentation: random shifts of up to 2 pixels
// (randomCropWithPadding). Adam with a per-epoch cosine decay; the test split is used once.
//
//   node examples/resnet-mnist.mjs [--epochs N] [--train N]      (after `npm run setup`)
//
// Defaults: 3 epochs on the full 70/15/15 split's training part (49,000 digits).
import * as kiln from 'kiln-ml';
import { mnistSplits } from './lib/mnist.mjs';

const { nn, optim, data, train } = kiln;
const args = process.argv.slice(2);
const flag = (name, fallback) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : fallback);
const EPOCHS = flag('--epochs', 3);
const OUT = 'out/resnet-mnist';
const started = performance.now();
kiln.setSeed(7);

/**
 * [N, 1, 28, 28] -> stem conv 3x3x16 BN ReLU, maxpool 2 (14x14) -> BasicBlock 16 (14x14)
 * -> BasicBlock 16->32 stride 2 (7x7) -> BasicBlock 32->64 stride 2 (4x4) -> global average pool
 * -> linear 64 -> 10. The stem pools early so the blocks run on 14x14 maps: a quarter of the cost.
 */
function resnet(seed) {
  return new nn.Sequential(
    new nn.Conv2d(1, 16, 3, { padding: 1, bias: false, seed }),
    new nn.BatchNorm2d(16),
    new nn.ReLU(),
    new nn.MaxPool2d(2),
    new nn.BasicBlock(16, 16, { seed: seed + 1 }),
    new nn.BasicBlock(16, 32, { stride: 2, seed: seed + 2 }),
    new nn.BasicBlock(32, 64, { stride: 2, seed: seed + 3 }),
    new nn.GlobalAvgPool2d(),
    new nn.Linear(64, 10, { seed: seed + 4 }),
  );
}

const splits = mnistSplits({ seed: 42 });
const limit = flag('--train', splits.train.n);
const trainSplit = { x: splits.train.x.subarray(0, limit * splits.pixels), y: splits.train.y.subarray(0, limit), n: limit };
// Images as [1, 28, 28] rows, so the batch is NCHW for the convolutions and the augmentation.
const images = (split, options) => new data.DataLoader(new data.TensorDataset(split.x, [1, 28, 28], split.y), options);
const trainLoader = images(trainSplit, { batchSize: 64, shuffle: true, seed: 1, transform: data.randomCropWithPadding(2, { seed: 2 }) });
const valLoader = images(splits.val, { batchSize: 1000 });

const model = resnet(100);
model.summary([1, 28, 28]);
const optimizer = new optim.Adam(model.parameters(), { lr: 2e-3 });
const schedule = new optim.WarmupCosine(optimizer, 0, EPOCHS, 1e-4);
console.log(`training on ${trainSplit.n} digits for ${EPOCHS} epochs (batch 64, shifts of up to 2 pixels)`);
const history = await kiln.fit(model, trainLoader, {
  epochs: EPOCHS,
  loss: (logits, y) => kiln.crossEntropy(logits, y),
  optimizer,
  metrics: ['accuracy'],
  validationData: valLoader,
  callbacks: [new train.LRScheduler(schedule)],
});
train.saveLearningCurves(`${OUT}/curves.html`, history, 'ResNet on MNIST');

const test = await kiln.evaluate(model, train.testSet(images(splits.test, { batchSize: 1000 })), {
  loss: (logits, y) => kiln.crossEntropy(logits, y),
  metrics: ['accuracy'],
});
const minutes = (performance.now() - started) / 60000;
console.log(`\nlearning curves: ${OUT}/curves.html`);
console.log(`test accuracy ${(100 * test.accuracy).toFixed(2)}% on ${splits.test.n} digits (${EPOCHS} epochs, ${trainSplit.n} training digits), wall time ${minutes.toFixed(1)} min`);
