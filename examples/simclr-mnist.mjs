// Contrastive self-supervised learning (SimCLR, Chen et al. 2020) on MNIST without labels: a small
// CNN embeds two random augmentations (shifts, noise, erased squares) of each digit, and NT-Xent
// pulls the two views of a digit together while pushing other digits apart. The labels are used
// only afterwards, by a linear probe: a logistic regression on the frozen encoder's features,
// trained on labelled digits and scored on held-out test digits. The same probe on the same
// encoder before pre-training (its random initialization) is the baseline it must beat.
//
// Pre-training runs through kiln.fit (the two views stacked along the batch axis; see
// kiln.ssl.contrastiveBatches), so fit's callbacks work: pass --dashboard for the live view, and
// the run writes TensorBoard events to out/simclr/tensorboard.
//
//   node examples/simclr-mnist.mjs [--epochs N] [--images N] [--dashboard]   (after `npm run setup`)
import { rmSync } from 'node:fs';
import * as kiln from 'kiln-ml';

const { data, nn, optim, ssl, train } = kiln;
const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const EPOCHS = flag('--epochs', 8);
const IMAGES = flag('--images', 10000);
const PROBE_TRAIN = flag('--probe-train', 5000);
const PROBE_TEST = flag('--probe-test', 5000);
const BATCH = flag('--batch', 128);
const SEED = 3;
const OUT = 'out/simclr';
const started = performance.now();
kiln.setSeed(SEED);
console.log(`Kiln ${kiln.getBackend()} backend: ${kiln.simdLevel()} kernels, ${kiln.numThreads()} threads\n`);

// 1. Unlabeled images: the first IMAGES training digits, as [N, 1, 28, 28] in [0, 1].
const mnist = data.loadMnist();
const pixels = data.scale(mnist.trainImages, 1 / 255);
const unlabeled = pixels.subarray(0, IMAGES * 784);

// 2. A view: a random shift of up to 4 pixels, then a random 8x8 square erased (half of the time),
//    then Gaussian noise. Digits keep their identity under each; pixel-level shortcuts do not survive.
const shift = data.randomCropWithPadding(4, { seed: SEED });
const noise = data.gaussianNoise(0.15, { seed: SEED + 1 });
const eraseRng = new data.Random(SEED + 2);
const erase = (x, [n, c, h, w]) => {
  const out = x.slice();
  for (let i = 0; i < n; i++) {
    if (eraseRng.next() < 0.5) continue;
    const top = eraseRng.int(h - 8);
    const left = eraseRng.int(w - 8);
    for (let y = top; y < top + 8; y++) out.fill(0, ((i * c) * h + y) * w + left, ((i * c) * h + y) * w + left + 8);
  }
  return out;
};
const augment = data.compose(shift, erase, noise);

// 3. The encoder (the representation, 128 features) and the projection head NT-Xent sees.
const encoder = () =>
  new nn.Sequential(
    new nn.Conv2d(1, 16, 3, { padding: 1, seed: SEED }), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Conv2d(16, 32, 3, { padding: 1, seed: SEED + 1 }), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Flatten(), new nn.Linear(32 * 7 * 7, 128, { seed: SEED + 2 }), new nn.ReLU(),
  );
const backbone = encoder();
const head = new nn.Sequential(new nn.Linear(128, 128, { seed: SEED + 3 }), new nn.ReLU(), new nn.Linear(128, 64, { seed: SEED + 4 }));
const model = new nn.Sequential(backbone, head);

// 4. The linear probe: labelled training digits and held-out test digits.
const probeData = (enc) => {
  const trainSet = ssl.embed(enc, pixels.subarray(pixels.length - PROBE_TRAIN * 784), [1, 28, 28]);
  const testSet = ssl.embed(enc, data.scale(mnist.testImages, 1 / 255).subarray(0, PROBE_TEST * 784), [1, 28, 28]);
  return ssl.linearProbe({
    trainFeatures: trainSet.features,
    trainLabels: Int32Array.from(mnist.trainLabels.subarray(mnist.trainLabels.length - PROBE_TRAIN)),
    testFeatures: testSet.features,
    testLabels: Int32Array.from(mnist.testLabels.subarray(0, PROBE_TEST)),
    dim: trainSet.dim,
    classes: 10,
  }, { seed: SEED });
};
const random = probeData(backbone);
console.log(`linear probe on the random (untrained) encoder: test accuracy ${(100 * random.testAccuracy).toFixed(2)}%\n`);

// 5. Pre-train with NT-Xent (temperature 0.5), Adam 1e-3, on the unlabeled images.
rmSync(OUT, { recursive: true, force: true });
const optimizer = new optim.Adam(model.parameters(), { lr: 1e-3 });
const history = await kiln.fit(model, ssl.contrastiveBatches(unlabeled, [1, 28, 28], { batchSize: BATCH, augment, seed: SEED }), {
  epochs: EPOCHS,
  loss: ssl.contrastiveLoss({ temperature: 0.5 }),
  optimizer,
  callbacks: [new train.TensorBoard(`${OUT}/tensorboard`, { histogramFreq: 2 })],
  dashboard: args.includes('--dashboard') ? { title: 'SimCLR on MNIST' } : undefined,
});

// 6. The same probe on the pre-trained encoder (the projection head is dropped, as in SimCLR).
const pretrained = probeData(backbone);
const minutes = (performance.now() - started) / 60000;
console.log(`\nNT-Xent loss: ${history.epochs[0].loss.toFixed(4)} (epoch 1) -> ${history.epochs.at(-1).loss.toFixed(4)} (epoch ${history.epochs.length})`);
console.log(`linear probe test accuracy: random encoder ${(100 * random.testAccuracy).toFixed(2)}%, SimCLR encoder ${(100 * pretrained.testAccuracy).toFixed(2)}%`);
console.log(`(${IMAGES} unlabeled images, ${EPOCHS} epochs; probe: ${PROBE_TRAIN} labelled training digits, ${PROBE_TEST} test digits; ${minutes.toFixed(1)} min)`);
console.log(`TensorBoard events: ${OUT}/tensorboard (tensorboard --logdir ${OUT}/tensorboard)`);
if (!(pretrained.testAccuracy > random.testAccuracy)) process.exitCode = 1;
