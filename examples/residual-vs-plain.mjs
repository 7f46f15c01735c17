// Why residual connections: the same deep CNN (22 convolutions, no BatchNorm) trained twice on the
// same MNIST digits with the same optimizer and budget, once as a plain stack of conv-ReLU layers
// and once with identity shortcuts around each pair of its 20 inner convolutions
// (x + conv(relu(conv(relu(x)))), via nn.Residual). Without shortcuts the signal shrinks at every
// layer (PyTorch's default initialization keeps less than the full variance through a ReLU), so
// the output barely depends on the input and the early layers get vanishing gradients; with
// them, every block starts close to the identity and the gradient reaches the first layers.
//
//   node examples/residual-vs-plain.mjs [--epochs N] [--train N] [--depth D]   (after `npm run setup`)
//
// Defaults: 8 epochs on 10,000 training digits, depth 20 (+ 2 stem convolutions), Adam 1e-3.
// Writes out/residual-vs-plain/curves.html (both models' training loss and validation accuracy).
import * as kiln from 'kiln-ml';
import { mnistSplits } from './lib/mnist.mjs';

const { nn, optim, data, train } = kiln;
const args = process.argv.slice(2);
const flag = (name, fallback) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : fallback);
const EPOCHS = flag('--epochs', 8);
const TRAIN = flag('--train', 10000);
const DEPTH = flag('--depth', 20);
const OUT = 'out/residual-vs-plain';
const C = 16;
const started = performance.now();

/** conv 3x3, C -> C, 'same' padding. */
const conv = (seed) => new nn.Conv2d(C, C, 3, { padding: 1, seed });

/**
 * [N, 1, 28, 28] -> stem: conv 1->16 ReLU, maxpool 2 (14x14), conv stride 2 ReLU (7x7) -> DEPTH
 * convolutions 16->16 at 7x7 (plain: each followed by ReLU; residual: in pairs inside
 * x + conv(relu(conv(relu(x))))) -> ReLU, global average pool, linear 16 -> 10.
 * Both have exactly the same parameters (and the same initial values for the same seed).
 */
function deepCnn(residual, seed) {
  const layers = [
    new nn.Conv2d(1, C, 3, { padding: 1, seed }), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Conv2d(C, C, 3, { padding: 1, stride: 2, seed: seed + 1 }), new nn.ReLU(),
  ];
  for (let i = 0; i < DEPTH; i += 2) {
    const [a, b] = [conv(seed + 2 + i), conv(seed + 3 + i)];
    if (residual) layers.push(new nn.Residual(new nn.Sequential(a, new nn.ReLU(), b)), new nn.ReLU());
    else layers.push(a, new nn.ReLU(), b, new nn.ReLU());
  }
  layers.push(new nn.GlobalAvgPool2d(), new nn.Linear(C, 10, { seed: seed + 2 + DEPTH }));
  return new nn.Sequential(...layers);
}

const splits = mnistSplits({ seed: 42 });
const trainSplit = { x: splits.train.x.subarray(0, TRAIN * splits.pixels), y: splits.train.y.subarray(0, TRAIN), n: TRAIN };
const valSplit = { x: splits.val.x.subarray(0, 5000 * splits.pixels), y: splits.val.y.subarray(0, 5000), n: 5000 };
const images = (split, options) => new data.DataLoader(new data.TensorDataset(split.x, [1, 28, 28], split.y), options);
const ce = (logits, y) => kiln.crossEntropy(logits, y);

const results = {};
for (const [name, residual] of [['plain', false], ['residual', true]]) {
  kiln.setSeed(11);
  const model = deepCnn(residual, 500);
  console.log(`\n== ${name}: ${DEPTH + 2} convolutions, ${model.parameters().reduce((n, p) => n + p.size, 0)} parameters`);
  const optimizer = new optim.Adam(model.parameters(), { lr: 1e-3 });
  const t0 = performance.now();
  const history = await kiln.fit(model, images(trainSplit, { batchSize: 64, shuffle: true, seed: 1 }), {
    epochs: EPOCHS, loss: ce, optimizer, metrics: ['accuracy'], validationData: images(valSplit, { batchSize: 1000 }),
  });
  const test = await kiln.evaluate(model, train.testSet(images(splits.test, { batchSize: 1000 })), { loss: ce, metrics: ['accuracy'] });
  results[name] = { history, test: test.accuracy, seconds: (performance.now() - t0) / 1000 };
  optimizer.dispose();
  model.dispose();
}

// Both models' curves in one chart: a History whose epochs carry plainLoss, residualLoss, ...
const merged = {
  epochs: results.plain.history.epochs.map((e, i) => {
    const r = results.residual.history.epochs[i];
    return { epoch: i + 1, plainLoss: e.loss, residualLoss: r.loss, plainValAccuracy: e.valAccuracy, residualValAccuracy: r.valAccuracy };
  }),
};
train.saveLearningCurves(`${OUT}/curves.html`, merged, `Plain vs residual CNN, ${DEPTH + 2} convolutions, no BatchNorm`, [
  `MNIST, ${TRAIN} training digits, ${EPOCHS} epochs, batch 64, Adam 1e-3; same parameters and initial values.`,
]);

console.log('\ntraining loss per epoch:');
console.log(`  epoch   ${'plain'.padStart(8)}   ${'residual'.padStart(8)}`);
merged.epochs.forEach((e) => console.log(`  ${String(e.epoch).padStart(5)}   ${e.plainLoss.toFixed(4).padStart(8)}   ${e.residualLoss.toFixed(4).padStart(8)}`));
for (const name of ['plain', 'residual']) {
  const r = results[name];
  console.log(`${name.padEnd(8)} test accuracy ${(100 * r.test).toFixed(2)}%  (${r.seconds.toFixed(0)} s)`);
}
console.log(`learning curves: ${OUT}/curves.html; wall time ${((performance.now() - started) / 60000).toFixed(1)} min`);
