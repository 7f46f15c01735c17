// A DCGAN on MNIST: a generator from 64-d Gaussian noise through a linear layer and two stride-2
// transposed convolutions (BatchNorm2d + ReLU between, tanh out) to 1x28x28 digits, and a
// discriminator of two stride-2 convolutions (LeakyReLU 0.2, dropout) and a linear logit. Each
// has its own Adam (lr 2e-4, betas 0.5/0.999, Radford et al.); D learns real vs detached fakes,
// G the non-saturating loss -log D(G(z)). Kept small (16/32 channels, a 12,000-digit subset) so
// it runs in a few minutes on 2 cores. Trained with kiln.fit and a custom step. Quality is judged by an MLP classifier trained on real
// digits (examples/lib/digit-score.mjs), against the same score for noise images and real digits.
//
//   node examples/gan-mnist.mjs [--epochs N] [--subset N]     (after `npm run setup`)
import { rmSync } from 'node:fs';
import * as kiln from 'kiln-ml';
import { trainDigitClassifier, classifierScore, formatScore } from './lib/digit-score.mjs';

const { data, nn, optim, viz } = kiln;
const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const EPOCHS = flag('--epochs', 5);
const SUBSET = flag('--subset', 12000);
const BATCH = 64;
const LATENT = 64;
const CH = 32; // channels after the first upsampling / before the last downsampling
const SEED = 11;
const OUT = 'out/gan';
const started = performance.now();
kiln.setSeed(SEED);
console.log(`Kiln ${kiln.getBackend()} backend: ${kiln.simdLevel()} kernels, ${kiln.numThreads()} threads\n`);

// 1. Data: the first SUBSET training digits, scaled to [-1, 1] to match the generator's tanh.
const mnist = data.loadMnist();
const PIXELS = mnist.rows * mnist.cols;
const images = data.scale(mnist.trainImages.subarray(0, SUBSET * PIXELS), 2 / 255);
for (let i = 0; i < images.length; i++) images[i] -= 1;
console.log(`MNIST: ${SUBSET} training digits in [-1, 1]\n`);

// 2. The models.
/** [batch, C·H·W] -> [batch, C, H, W], so a linear layer can feed convolutions. */
class Unflatten extends nn.Module {
  constructor(shape) { super(); this.shape = shape; }
  forward(x) { return x.reshape([x.shape[0], ...this.shape]); }
}
const generator = new nn.Sequential(
  new nn.Linear(LATENT, 2 * CH * 7 * 7, { seed: SEED }), new Unflatten([2 * CH, 7, 7]), new nn.BatchNorm2d(2 * CH), new nn.ReLU(),
  new nn.ConvTranspose2d(2 * CH, CH, 4, { stride: 2, padding: 1, seed: SEED + 1 }), new nn.BatchNorm2d(CH), new nn.ReLU(), // 7 -> 14
  new nn.ConvTranspose2d(CH, 1, 4, { stride: 2, padding: 1, seed: SEED + 2 }), new nn.Tanh(), // 14 -> 28
);
const discriminator = new nn.Sequential(
  new nn.Conv2d(1, CH, 4, { stride: 2, padding: 1, seed: SEED + 3 }), new nn.LeakyReLU(0.2), // 28 -> 14
  new nn.Conv2d(CH, 2 * CH, 4, { stride: 2, padding: 1, seed: SEED + 4 }), new nn.LeakyReLU(0.2), new nn.Dropout(0.3), // 14 -> 7
  new nn.Flatten(), new nn.Linear(2 * CH * 7 * 7, 1, { seed: SEED + 5 }),
);
const adam = { lr: 2e-4, beta1: 0.5, beta2: 0.999 };
const gOptimizer = new optim.Adam(generator.parameters(), adam);
const dOptimizer = new optim.Adam(discriminator.parameters(), adam);
const fixedNoise = kiln.keep(kiln.randn([64, LATENT]));

/** 64 samples from the fixed noise, as [64, 1, 28, 28] in [0, 1] (generator in eval mode). */
function samples(noise = fixedNoise) {
  generator.eval();
  const x = kiln.noGrad(() => kiln.tidy(() => generator.forward(noise).add(1).mul(0.5)));
  generator.train();
  return x;
}

// 3. Train with fit: two players, two optimizers, so the step optimizes by hand
// (manualOptimization): per batch one D step on real vs detached fakes, then one G step. fit
// zeroes both optimizers' gradients before each step; ctx.optimizerStep keeps an update only if
// its gradients were finite (checked on the device, read with the step's loss). The step's loss (logged as `loss`) is D's; G's loss and D's accuracy
// are logged beside it.
rmSync(OUT, { recursive: true, force: true });
/** Both players in one module, so fit (and checkpoints) see every parameter; forward(z) generates. */
class Gan extends nn.Module {
  constructor(g, d) { super(); this.generator = g; this.discriminator = d; }
  forward(z) { return this.generator.forward(z); }
}
const gan = new Gan(generator, discriminator);
const loader = new data.DataLoader(new data.TensorDataset(images, [1, 28, 28]), { batchSize: BATCH, shuffle: true, seed: SEED, dropLast: true });
await kiln.fit(gan, loader, {
  epochs: EPOCHS,
  optimizer: [dOptimizer, gOptimizer],
  manualOptimization: true,
  trainStep: ({ x: real }, ctx) => {
    const realLogits = discriminator.forward(real);
    const fakeLogits = discriminator.forward(generator.forward(kiln.randn([BATCH, LATENT])).detach());
    const dLoss = nn.discriminatorLoss(realLogits, fakeLogits);
    dLoss.backward();
    ctx.optimizerStep(dOptimizer);

    const gLoss = nn.generatorLoss(discriminator.forward(generator.forward(kiln.randn([BATCH, LATENT]))));
    gLoss.backward();
    ctx.optimizerStep(gOptimizer);

    ctx.log('gLoss', gLoss);
    ctx.log('dAccuracy', realLogits.greater(0).cast('float32').sum().add(fakeLogits.less(0).cast('float32').sum()).div(2 * BATCH));
    return dLoss;
  },
  callbacks: [{ onEpochEnd: (epoch) => kiln.tidy(() => viz.saveImageGrid(`${OUT}/epoch-${epoch}.png`, samples(), { cols: 8, scale: 2 })) }],
});
kiln.tidy(() => viz.saveImageGrid(`${OUT}/samples.png`, samples(), { cols: 8, scale: 2 }));

// 4. The figure: a classifier trained on real digits 10,000..40,000, scoring 1,000 samples.
console.log('\ntraining the judging classifier on 30,000 other real digits...');
const judgeTrain = { x: data.scale(mnist.trainImages.subarray(10000 * PIXELS, 40000 * PIXELS), 1 / 255), y: mnist.trainLabels.subarray(10000, 40000) };
const judgeTest = { x: data.scale(mnist.testImages.subarray(0, 2000 * PIXELS), 1 / 255), y: mnist.testLabels.subarray(0, 2000) };
const { model: judge, accuracy } = trainDigitClassifier(judgeTrain, judgeTest, PIXELS);
console.log(`classifier accuracy on 2,000 real test digits: ${(100 * accuracy).toFixed(1)}%`);
const score = (x) => classifierScore(judge, x);
const generated = kiln.tidy(() => score(kiln.concat(Array.from({ length: 16 }, () => samples(kiln.randn([64, LATENT])).reshape([64, PIXELS])))));
const noise = kiln.tidy(() => score(kiln.randu([1024, PIXELS])));
const real = kiln.tidy(() => score(kiln.tensor(judgeTest.x.subarray(0, 1024 * PIXELS), [1024, PIXELS])));
console.log(`\nclassifier score (1,024 images each; 10 is the maximum):`);
console.log(`  generated: ${formatScore(generated)}`);
console.log(`  noise:     ${formatScore(noise)}`);
console.log(`  real:      ${formatScore(real)}`);
console.log(`saved ${OUT}/epoch-1..${EPOCHS}.png and ${OUT}/samples.png (64 samples from fixed noise)`);
console.log(`total wall time ${((performance.now() - started) / 60000).toFixed(1)} min`);
