// Denoising diffusion (DDPM, Ho et al. 2020) twice: first on 2-D two-moons points with an MLP
// denoiser, which validates the schedule and sampling math on data one can measure exactly,
// then on MNIST digits downscaled to 14x14 with a small U-Net (stride-2 convolution down,
// transposed convolution up, a skip connection, group normalization, the timestep embedding
// added in every block). Both predict the added noise with an MSE loss and sample ancestrally
// (kiln.nn.DDPMSchedule). Figures: for 2-D, the mean nearest-neighbour distance between
// generated and real points (both directions) against the same for Gaussian noise; for
// digits, the classifier score of examples/lib/digit-score.mjs against noise and real digits.
//
//   node examples/diffusion.mjs [--part 2d|mnist|both] [--mnist-steps N]     (after `npm run setup`)
import { rmSync, mkdirSync, writeFileSync } from 'node:fs';
import * as kiln from 'kiln-ml';
import { trainDigitClassifier, classifierScore, formatScore } from './lib/digit-score.mjs';

const { data, nn, optim, viz, losses } = kiln;
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const PART = option('--part', 'both');
const MNIST_STEPS = Number(option('--mnist-steps', 1500));
const T = 200;
const SEED = 5;
const OUT = 'out/diffusion';
const started = performance.now();
kiln.setSeed(SEED);
rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });
console.log(`Kiln ${kiln.getBackend()} backend: ${kiln.simdLevel()} kernels, ${kiln.numThreads()} threads\n`);
const schedule = nn.DDPMSchedule.linear(T);
console.log(`DDPM: T = ${T}, linear beta ${schedule.betas[0].toExponential(1)}..${schedule.betas[T - 1].toFixed(2)}, alphaBar_T = ${schedule.alphaBars[T - 1].toExponential(2)}\n`);

/**
 * Trains `model` with kiln.fit for `steps` batches of clean examples (`makeBatch()` -> x0) with
 * the DDPM objective: noise x0 at a random step t, predict the noise, MSE. The data is drawn
 * fresh for every batch, so one "epoch" of fit is the whole run; a batch callback collects the
 * loss curve (and `onBatch` may report progress). Returns the per-step losses.
 */
async function trainDenoiser(model, optimizer, steps, makeBatch, onBatch) {
  const history = [];
  const fresh = { length: steps, *[Symbol.iterator]() { for (let i = 0; i < steps; i++) yield { x: makeBatch() }; } };
  await kiln.fit(model, fresh, {
    epochs: 1,
    optimizer,
    verbose: 0,
    trainStep: ({ x }, ctx) => {
      const { steps: t, noise, xt } = schedule.noisyBatch(x);
      return losses.mse(ctx.model.forward(xt, t), noise);
    },
    callbacks: [{ onBatchEnd: (batch, logs) => { history.push(logs.loss); onBatch?.(batch, history); } }],
  });
  return history;
}

/** Prints the loss averaged over windows of `every` steps, as a curve. */
function lossCurve(name, history, every) {
  const points = [];
  for (let i = 0; i + every <= history.length; i += every) points.push((history.slice(i, i + every).reduce((a, b) => a + b, 0) / every).toFixed(3));
  console.log(`${name} loss every ${every} steps: ${points.join(' ')}`);
}

// ---- Part 1: two moons ----

/** n two-moons points [n, 2], roughly centred and unit-scaled, noise 0.05. */
function twoMoons(n, rng) {
  const out = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    const theta = Math.PI * rng.next();
    const upper = i % 2 === 0;
    const x = upper ? Math.cos(theta) : 1 - Math.cos(theta);
    const y = upper ? Math.sin(theta) : 0.5 - Math.sin(theta);
    out[2 * i] = (x - 0.5) * 1.5 + 0.05 * rng.normal();
    out[2 * i + 1] = (y - 0.25) * 1.5 + 0.05 * rng.normal();
  }
  return out;
}

/** Mean distance from each point of a to its nearest point of b (points [n, 2] on the host). */
function meanNearest(a, b) {
  let total = 0;
  for (let i = 0; i < a.length; i += 2) {
    let best = Infinity;
    for (let j = 0; j < b.length; j += 2) best = Math.min(best, (a[i] - b[j]) ** 2 + (a[i + 1] - b[j + 1]) ** 2);
    total += Math.sqrt(best);
  }
  return total / (a.length / 2);
}

async function partTwoMoons() {
  console.log('== Part 1: two moons, MLP denoiser ==');
  const t0 = performance.now();
  const rng = new data.Random(SEED);
  const EMBED = 32;
  const denoiser = new nn.Sequential(
    new nn.Linear(2 + EMBED, 128, { seed: SEED }), new nn.GELU(),
    new nn.Linear(128, 128, { seed: SEED + 1 }), new nn.GELU(),
    new nn.Linear(128, 128, { seed: SEED + 2 }), new nn.GELU(),
    new nn.Linear(128, 2, { seed: SEED + 3 }),
  );
  const predict = (xt, steps) => denoiser.forward(nn.withTimestep(xt, steps, EMBED));
  const optimizer = new optim.Adam(denoiser.parameters(), { lr: 2e-3 });
  const STEPS = 3000;
  // The MLP takes the timestep as extra input columns; wrapped in a module, fit sees its parameters and the step calls forward(xt, t).
  const model = new (class extends nn.Module {
    constructor() { super(); this.denoiser = denoiser; }
    forward(xt, steps) { return predict(xt, steps); }
  })();
  const history = await trainDenoiser(model, optimizer, STEPS, () => kiln.tensor(twoMoons(256, rng), [256, 2]));
  lossCurve('2-D', history, 300);
  const generated = kiln.tidy(() => schedule.sample(predict, [1000, 2]).dataSync());
  const real = twoMoons(1000, rng);
  const noise = kiln.tidy(() => kiln.randn([1000, 2]).dataSync());
  const chamfer = (x) => [meanNearest(x, real), meanNearest(real, x)];
  const [genToReal, realToGen] = chamfer(generated);
  const [noiseToReal, realToNoise] = chamfer(noise);
  const [fresh] = chamfer(twoMoons(1000, rng));
  writeFileSync(`${OUT}/moons.csv`, 'x,y\n' + Array.from({ length: 1000 }, (_, i) => `${generated[2 * i]},${generated[2 * i + 1]}`).join('\n'));
  console.log(`mean nearest-neighbour distance to 1,000 real points (generated -> real, real -> generated):`);
  console.log(`  DDPM samples:   ${genToReal.toFixed(4)}, ${realToGen.toFixed(4)}`);
  console.log(`  Gaussian noise: ${noiseToReal.toFixed(4)}, ${realToNoise.toFixed(4)}`);
  console.log(`  fresh real set: ${fresh.toFixed(4)} (the floor)`);
  console.log(`saved ${OUT}/moons.csv; part 1 took ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}

// ---- Part 2: MNIST 14x14, a small U-Net ----

/** Group normalization over (channels / groups, H, W) per example, with a per-channel affine. */
class GroupNorm extends nn.Module {
  constructor(groups, channels) {
    super();
    this.groups = groups;
    this.weight = this.registerParameter(kiln.ones([1, channels, 1, 1]));
    this.bias = this.registerParameter(kiln.zeros([1, channels, 1, 1]));
  }

  forward(x) {
    const [b, c, h, w] = x.shape;
    const g = x.reshape([b, this.groups, (c / this.groups) * h * w]);
    const centred = g.sub(g.mean(2, true));
    const normed = centred.mul(centred.square().mean(2, true).add(1e-5).rsqrt()).reshape([b, c, h, w]);
    return normed.mul(this.weight).add(this.bias);
  }
}

/** conv3x3 -> GroupNorm -> + timestep projection -> GELU: [b, cin, h, w], emb [b, E] -> [b, cout, h, w]. */
class Block extends nn.Module {
  constructor(cin, cout, embed, seed) {
    super();
    this.conv = new nn.Conv2d(cin, cout, 3, { padding: 1, seed });
    this.norm = new GroupNorm(4, cout);
    this.time = new nn.Linear(embed, cout, { seed: seed + 1 });
  }

  forward(x, emb) {
    const h = this.norm.forward(this.conv.forward(x));
    return h.add(this.time.forward(emb).reshape([x.shape[0], -1, 1, 1])).gelu();
  }
}

/** x_t [b, 1, 14, 14], steps -> predicted noise [b, 1, 14, 14]. Channels C at 14x14, 2C at 7x7. */
class UNet extends nn.Module {
  constructor(c, seed) {
    super();
    this.embedDim = 32;
    this.embed = new nn.Sequential(new nn.Linear(32, 64, { seed }), new nn.GELU());
    this.inBlock = new Block(1, c, 64, seed + 10);
    this.down = new nn.Conv2d(c, 2 * c, 4, { stride: 2, padding: 1, seed: seed + 20 }); // 14 -> 7
    this.mid1 = new Block(2 * c, 2 * c, 64, seed + 30);
    this.mid2 = new Block(2 * c, 2 * c, 64, seed + 40);
    this.up = new nn.ConvTranspose2d(2 * c, c, 4, { stride: 2, padding: 1, seed: seed + 50 }); // 7 -> 14
    this.outBlock = new Block(2 * c, c, 64, seed + 60); // after concatenating the skip
    this.head = new nn.Conv2d(c, 1, 3, { padding: 1, seed: seed + 70 });
  }

  forward(x, steps) {
    const emb = this.embed.forward(nn.timestepEmbedding(steps, this.embedDim));
    const skip = this.inBlock.forward(x, emb);
    let h = this.down.forward(skip);
    h = this.mid2.forward(this.mid1.forward(h, emb), emb);
    h = kiln.concat([this.up.forward(h), skip], 1);
    return this.head.forward(this.outBlock.forward(h, emb));
  }
}

async function partMnist() {
  console.log(`== Part 2: MNIST 14x14, U-Net denoiser, ${MNIST_STEPS} steps ==`);
  const t0 = performance.now();
  const mnist = data.loadMnist();
  const downscale = (u8, n) => kiln.tidy(() => {
    const x = kiln.tensor(data.scale(u8.subarray(0, n * 784), 1 / 255), [n, 1, 28, 28]);
    return kiln.avgPool2d(x, 2).reshape([n, 196]).dataSync();
  });
  const N = 20000;
  const train = downscale(mnist.trainImages, N);
  const rng = new data.Random(SEED);
  const unet = new UNet(16, SEED);
  const optimizer = new optim.Adam(unet.parameters(), { lr: 1e-3 });
  const BATCH = 64;
  const digits = () => {
    const rows = Int32Array.from({ length: BATCH }, () => rng.int(N));
    return kiln.tidy(() => kiln.tensor(data.gatherRows(train, 196, rows), [BATCH, 1, 14, 14]).mul(2).sub(1));
  };
  const report = (step, history) => {
    if (step % 250 === 0) console.log(`  step ${step}/${MNIST_STEPS}: loss (last 250) ${(history.slice(-250).reduce((a, b) => a + b, 0) / 250).toFixed(4)}, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  };
  const history = await trainDenoiser(unet, optimizer, MNIST_STEPS, digits, report);
  lossCurve('U-Net', history, Math.max(1, Math.floor(MNIST_STEPS / 10)));
  const ts = performance.now();
  const predict = (xt, steps) => unet.forward(xt, steps);
  const samples = kiln.keep(kiln.tidy(() => schedule.sample(predict, [256, 1, 14, 14], { clip: [-1, 1] }).add(1).mul(0.5)));
  console.log(`sampled 256 digits in ${((performance.now() - ts) / 1000).toFixed(1)} s (${T} network evaluations)`);
  kiln.tidy(() => viz.saveImageGrid(`${OUT}/samples.png`, samples.slice([0, 0, 0, 0], [64, -1, -1, -1]), { cols: 8, scale: 4 }));

  const judgeTrain = { x: downscale(mnist.trainImages.subarray(30000 * 784), 30000), y: mnist.trainLabels.subarray(30000, 60000) };
  const judgeTest = { x: downscale(mnist.testImages, 2000), y: mnist.testLabels.subarray(0, 2000) };
  const { model: judge, accuracy } = trainDigitClassifier(judgeTrain, judgeTest, 196);
  console.log(`judging classifier (14x14, trained on 30,000 other digits): ${(100 * accuracy).toFixed(1)}% on 2,000 real test digits`);
  const generated = kiln.tidy(() => classifierScore(judge, samples.reshape([256, 196])));
  const noise = kiln.tidy(() => classifierScore(judge, kiln.randu([256, 196])));
  const real = kiln.tidy(() => classifierScore(judge, kiln.tensor(judgeTest.x.subarray(0, 256 * 196), [256, 196])));
  console.log('classifier score (256 images each; 10 is the maximum):');
  console.log(`  DDPM samples: ${formatScore(generated)}`);
  console.log(`  noise:        ${formatScore(noise)}`);
  console.log(`  real digits:  ${formatScore(real)}`);
  samples.dispose();
  console.log(`saved ${OUT}/samples.png (64 samples, 14x14 shown 4x); part 2 took ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}

if (PART === '2d' || PART === 'both') await partTwoMoons();
if (PART === 'mnist' || PART === 'both') await partMnist();
console.log(`total wall time ${((performance.now() - started) / 60000).toFixed(1)} min`);
