// Transfer learning on MNIST: pretrain a small CNN on digits 0-4 (all of their training data),
// then learn digits 5-9 from only 5, 10, 20 and 50 examples per digit (after 2 epochs on 0-4). The fine-tuned model reuses
// the pretrained convolutional body (edge and stroke detectors transfer across digits; an MLP's
// pixel-level features barely do): its weights are loaded from the saved model into a model with
// a NEW head, the body is frozen while the head learns, then unfrozen with a smaller learning rate
// (per-group rates). The baseline trains the same architecture from scratch on the same examples.
// Exits non-zero if fine-tuning does not beat scratch at every size.
//
//   node examples/finetune.mjs [--per-class N]      (after `npm run setup`; default: 5,10,20,50)
import * as kiln from 'kiln-ml';
import { loader, mnistSplits } from './lib/mnist.mjs';

const { nn, optim } = kiln;
const args = process.argv.slice(2);
const SIZES = args.includes('--per-class') ? args[args.indexOf('--per-class') + 1].split(',').map(Number) : [5, 10, 20, 50];
const OUT = 'out/finetune';
const started = performance.now();
kiln.setSeed(3);
const ce = (logits, y) => kiln.crossEntropy(logits, y);

/**
 * body: [N, 784] -> [N, 1, 28, 28] -> conv 3x3x16 ReLU, maxpool 2 -> conv 3x3x32 ReLU, maxpool 2
 * -> flatten (28 -> 14 -> 7 with 'same' padding: 32·7·7 = 1568 features); head: 1568 -> classes.
 * Only the convolutions transfer: a dense layer on top of them learns task A's classes.
 */
class Net extends nn.Module {
  constructor(classes, seed) {
    super();
    this.body = new nn.Sequential(
      new nn.Conv2d(1, 16, 3, { padding: 1, seed }), new nn.ReLU(), new nn.MaxPool2d(2),
      new nn.Conv2d(16, 32, 3, { padding: 1, seed: seed + 1 }), new nn.ReLU(), new nn.MaxPool2d(2),
      new nn.Flatten(),
    );
    this.head = new nn.Linear(32 * 7 * 7, classes, { seed: seed + 2 });
  }
  forward(x) {
    return this.head.forward(this.body.forward(x.reshape([x.shape[0], 1, 28, 28])));
  }
}

const testAccuracy = async (model, split, pixels) =>
  (await kiln.evaluate(model, kiln.train.testSet(loader(split, pixels, { batchSize: 1000 })), { loss: ce, metrics: ['accuracy'] })).accuracy;

// 1. Pretrain on digits 0-4 and save the model (safetensors + config).
const a = mnistSplits({ seed: 42, digits: [0, 1, 2, 3, 4] });
console.log(`task A (digits 0-4): ${a.train.n} training examples`);
const pretrained = new Net(5, 100);
const optA = new optim.Adam(pretrained.parameters(), { lr: 1e-3 });
await kiln.fit(pretrained, loader(a.train, a.pixels, { batchSize: 128, shuffle: true, seed: 1 }), {
  epochs: 2, loss: ce, optimizer: optA, metrics: ['accuracy'], validationData: loader(a.val, a.pixels, { batchSize: 1024 }),
});
console.log(`task A test accuracy: ${(100 * (await testAccuracy(pretrained, a.test, a.pixels))).toFixed(2)}%`);
kiln.saveModel(`${OUT}/pretrained`, { stateDict: pretrained.stateDict(), config: { architecture: 'cnn', body: 'conv16-pool-conv32-pool', classes: 5, task: 'digits 0-4' } });

// 2. Task B: digits 5-9 (relabelled 0-4), with PER_CLASS training examples per digit, for each size.
// Early stopping watches 1,000 validation examples (the full validation split would cost more than
// the training itself at these sizes); the test split is used once per model at the end.
const saved = kiln.loadModel(`${OUT}/pretrained`).stateDict;
const bodyOnly = Object.fromEntries(Object.entries(saved).filter(([name]) => name.startsWith('body.')));
const results = [];
for (const PER_CLASS of SIZES) {
  const b = mnistSplits({ seed: 42, digits: [5, 6, 7, 8, 9], perClass: PER_CLASS });
  const valSplit = { x: b.val.x.subarray(0, 1000 * b.pixels), y: b.val.y.subarray(0, 1000), n: 1000 };
  console.log(`\ntask B (digits 5-9): ${b.train.n} training examples, ${valSplit.n} validation, ${b.test.n} test`);
  const trainB = () => loader(b.train, b.pixels, { batchSize: 20, shuffle: true, seed: 2 });
  const valB = loader(valSplit, b.pixels, { batchSize: 1000 });

  async function trainTaskB(name, model, optimizer, epochs) {
    const early = new kiln.train.EarlyStopping({ monitor: 'valAccuracy', patience: 8, restoreBestWeights: true });
    const history = await kiln.fit(model, trainB(), { epochs, loss: ce, optimizer, metrics: ['accuracy'], validationData: valB, callbacks: [early], verbose: 0 });
    const best = Math.max(...history.epochs.map((e) => e.valAccuracy));
    console.log(`  ${name}: ${history.epochs.length} epochs; best validation accuracy ${(100 * best).toFixed(2)}% (epoch ${early.bestEpoch})`);
    optimizer.dispose();
    return best;
  }

  // 2a. From scratch.
  const scratch = new Net(5, 200);
  await trainTaskB('from scratch', scratch, new optim.Adam(scratch.parameters(), { lr: 1e-3 }), 40);

  // 2b. Fine-tuned: load the saved body into a model with a new head (the head's keys are left out).
  const tuned = new Net(5, 300);
  const { missingKeys } = tuned.loadStateDict(bodyOnly, { strict: false });
  console.log(`  loaded ${Object.keys(bodyOnly).length} body tensors from ${OUT}/pretrained; new (missing) keys: ${missingKeys.join(', ')}`);
  tuned.body.freeze();
  const headOnly = await trainTaskB('fine-tune, phase 1: body frozen, head only', tuned, new optim.Adam(tuned.parameters(), { lr: 3e-3 }), 40);
  // Phase 2 can also make things worse (a few dozen examples, a fresh Adam's first full-size
  // steps): keep phase 1's weights unless phase 2 does better on validation.
  kiln.saveModel(`${OUT}/phase1`, { stateDict: tuned.stateDict(), config: { perClass: PER_CLASS } });
  tuned.body.unfreeze();
  const [bodyLr, headLr] = [1e-4, 3e-4];
  const groups = [
    { params: tuned.body.parameters(), lr: bodyLr },
    { params: tuned.head.parameters(), lr: headLr },
  ];
  const allLayers = await trainTaskB(`fine-tune, phase 2: all layers, body lr ${bodyLr}, head lr ${headLr}`, tuned, new optim.Adam(groups, { lr: headLr }), 40);
  if (allLayers <= headOnly) {
    const phase1 = kiln.loadModel(`${OUT}/phase1`).stateDict;
    tuned.loadStateDict(phase1);
    kiln.dispose(Object.values(phase1));
    console.log('  phase 2 did not improve validation accuracy: keeping the phase 1 weights');
  }

  // 3. One test evaluation of each.
  const scratchAcc = await testAccuracy(scratch, b.test, b.pixels);
  const tunedAcc = await testAccuracy(tuned, b.test, b.pixels);
  console.log(`  test accuracy with ${PER_CLASS} examples per digit: from scratch ${(100 * scratchAcc).toFixed(2)}%, fine-tuned ${(100 * tunedAcc).toFixed(2)}%`);
  results.push({ perClass: PER_CLASS, scratch: scratchAcc, tuned: tunedAcc });
  scratch.dispose();
  tuned.dispose();
}
kiln.dispose(Object.values(saved));

console.log('\ntask B (digits 5-9) test accuracy:');
console.log('  examples/digit   from scratch   fine-tuned   gain');
for (const r of results) {
  console.log(`  ${String(r.perClass).padStart(14)}   ${(100 * r.scratch).toFixed(2).padStart(11)}%   ${(100 * r.tuned).toFixed(2).padStart(9)}%   ${(100 * (r.tuned - r.scratch)).toFixed(2).padStart(5)} points`);
}
console.log(`wall time ${((performance.now() - started) / 60000).toFixed(1)} min`);
if (results.some((r) => r.tuned <= r.scratch)) process.exitCode = 1;
