// Masked autoencoding (MAE, He et al. 2021) on MNIST without labels: each 28x28 digit is cut
// into 49 patches of 4x4; 75% of them are hidden at random, a small ViT encoder (2 layers, width
// 64, fixed 2-D sin-cos positions) sees the visible patches, and a 1-layer decoder predicts the
// pixels of the hidden ones from the encoded tokens and a learned mask token per hidden position.
// The score is the mean squared error on hidden pixels of held-out test digits, against the
// baseline of predicting each hidden patch as the mean training patch at its position. A linear
// probe on the encoder's averaged tokens (all patches visible) is compared with the same probe on
// the untrained encoder. Writes test digits, their masked inputs and reconstructions as a PNG grid.
//
//   node examples/mae-mnist.mjs [--epochs N] [--images N] [--patch 4|7] [--mask 0.75] [--lr 2e-3]   (after `npm run setup`)
import * as kiln from 'kiln-ml';

const { data, optim, ssl, viz } = kiln;
const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const EPOCHS = flag('--epochs', 10);
const IMAGES = flag('--images', 20000);
const PROBE = flag('--probe', 5000);
const BATCH = 128;
const MASK_RATIO = flag('--mask', 0.75);
const PATCH = flag('--patch', 4);
const GRID = 28 / PATCH;
const LR = flag('--lr', 2e-3);
const SEED = 5;
const OUT = 'out/mae';
const started = performance.now();
kiln.setSeed(SEED);
console.log(`Kiln ${kiln.getBackend()} backend: ${kiln.simdLevel()} kernels, ${kiln.numThreads()} threads\n`);

// 1. Unlabeled training digits and held-out test digits, [N, 1, 28, 28] in [0, 1].
const mnist = data.loadMnist();
const trainPixels = data.scale(mnist.trainImages, 1 / 255).subarray(0, IMAGES * 784);
const testPixels = data.scale(mnist.testImages, 1 / 255);
const testCount = 2000;

// 2. The model, and the baseline: the mean training patch at each of the 16 positions.
const mae = new ssl.MaskedAutoencoder({ imageShape: [1, 28, 28], patch: PATCH, dim: 64, depth: 2, heads: 4, decoderDim: 64, decoderDepth: 1, seed: SEED });
const meanPatches = kiln.keep(kiln.tidy(() => ssl.patchify(kiln.tensor(trainPixels, [IMAGES, 1, 28, 28]), PATCH).mean(0)));

/** Test-set MSE on hidden pixels, of the model and of the mean-patch baseline, under the same masks. */
function evaluate() {
  const rng = new data.Random(777); // the same masks at every evaluation
  let model = 0;
  let baseline = 0;
  mae.eval();
  kiln.noGrad(() => {
    for (let start = 0; start < testCount; start += 500) {
      kiln.tidy(() => {
        const x = kiln.tensor(testPixels.subarray(start * 784, (start + 500) * 784), [500, 1, 28, 28]);
        const mask = ssl.randomPatchMask(500, mae.patches, MASK_RATIO, rng);
        const target = ssl.patchify(x, PATCH);
        model += ssl.maskedPatchError(mae.reconstruct(x, mask), target, mask.hidden).dataSync()[0] / (testCount / 500);
        baseline += ssl.maskedPatchError(meanPatches.expand([500, mae.patches, PATCH * PATCH]), target, mask.hidden).dataSync()[0] / (testCount / 500);
      });
    }
  });
  return { model, baseline };
}

/** Linear-probe test accuracy of the encoder's averaged tokens. */
function probe() {
  const encoder = { forward: (x) => mae.encode(x), eval: () => mae.eval() };
  const trainSet = ssl.embed(encoder, data.scale(mnist.trainImages, 1 / 255).subarray((60000 - PROBE) * 784), [1, 28, 28]);
  const testSet = ssl.embed(encoder, testPixels.subarray(0, testCount * 784), [1, 28, 28]);
  return ssl.linearProbe({
    trainFeatures: trainSet.features,
    trainLabels: Int32Array.from(mnist.trainLabels.subarray(60000 - PROBE)),
    testFeatures: testSet.features,
    testLabels: Int32Array.from(mnist.testLabels.subarray(0, testCount)),
    dim: trainSet.dim,
    classes: 10,
  }, { seed: SEED }).testAccuracy;
}

const before = evaluate();
const randomProbe = probe();
console.log(`before training: hidden-pixel MSE ${before.model.toFixed(4)} (mean-patch baseline ${before.baseline.toFixed(4)}); linear probe ${(100 * randomProbe).toFixed(2)}%\n`);

// 3. Train: Adam, a new random mask for every batch.
const optimizer = new optim.Adam(mae.parameters(), { lr: LR });
const rng = new data.Random(SEED);
const steps = Math.floor(IMAGES / BATCH);
for (let epoch = 1; epoch <= EPOCHS; epoch++) {
  const t0 = performance.now();
  const order = rng.permutation(IMAGES);
  let total = 0;
  mae.train();
  for (let s = 0; s < steps; s++) {
    const rows = data.gatherRows(trainPixels, 784, order.subarray(s * BATCH, (s + 1) * BATCH));
    total += kiln.tidy(() => {
      optimizer.zeroGrad();
      const loss = mae.loss(kiln.tensor(rows, [BATCH, 1, 28, 28]), ssl.randomPatchMask(BATCH, mae.patches, MASK_RATIO, rng));
      loss.backward();
      optimizer.step();
      return loss.dataSync()[0];
    });
  }
  const { model, baseline } = evaluate();
  console.log(`epoch ${epoch}/${EPOCHS}  train ${(total / steps).toFixed(4)}  test hidden-pixel MSE ${model.toFixed(4)} (baseline ${baseline.toFixed(4)})  (${((performance.now() - t0) / 1000).toFixed(1)}s)`);
}

// 4. The result, the probe, and a picture: test digits, what the encoder saw, the reconstruction.
const after = evaluate();
const trainedProbe = probe();
kiln.tidy(() => {
  const x = kiln.tensor(testPixels.subarray(0, 10 * 784), [10, 1, 28, 28]);
  const mask = ssl.randomPatchMask(10, mae.patches, MASK_RATIO, new data.Random(1));
  const patches = ssl.patchify(x, PATCH);
  const predicted = kiln.noGrad(() => mae.reconstruct(x, mask));
  const keep = kiln.sub(1, mask.hidden);
  const toImages = (p) => p.reshape([10, GRID, GRID, PATCH, PATCH]).permute([0, 1, 3, 2, 4]).reshape([10, 1, 28, 28]);
  const masked = toImages(patches.mul(keep).add(mask.hidden.mul(0.35))); // hidden patches shown grey
  const filled = toImages(patches.mul(keep).add(kiln.minimum(kiln.maximum(predicted, 0), 1).mul(mask.hidden)));
  viz.saveImageGrid(`${OUT}/reconstructions.png`, kiln.concat([x, masked, filled], 0), { cols: 10, scale: 3 });
});
const minutes = (performance.now() - started) / 60000;
console.log(`\nhidden-pixel MSE on ${testCount} test digits: ${after.model.toFixed(4)} vs ${after.baseline.toFixed(4)} for the mean-patch baseline (${(after.model / after.baseline * 100).toFixed(0)}% of it)`);
console.log(`linear probe test accuracy: untrained encoder ${(100 * randomProbe).toFixed(2)}%, MAE encoder ${(100 * trainedProbe).toFixed(2)}%`);
console.log(`saved ${OUT}/reconstructions.png (rows: digits, the visible patches, reconstructions); ${minutes.toFixed(1)} min`);
if (!(after.model < after.baseline)) process.exitCode = 1;
