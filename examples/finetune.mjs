// Transfer learning on MNIST: pretrain on digits 0-4 (all of their training data), then learn
// digits 5-9 from only 20 examples per digit. The fine-tuned model reuses the pretrained body:
// its weights are loaded from the saved model into a model with a NEW head, the body is frozen
// while the head learns, then unfrozen with a 10x smaller learning rate (per-group rates).
// The baseline trains the same architecture from scratch on the same 100 examples.
//
//   node examples/finetune.mjs [--per-class N]      (after `npm run setup`)
import * as kiln from '../dist/index.js';
import { loader, mnistSplits } from './lib/mnist.mjs';

const { nn, optim } = kiln;
const args = process.argv.slice(2);
const PER_CLASS = args.includes('--per-class') ? Number(args[args.indexOf('--per-class') + 1]) : 20;
const OUT = 'out/finetune';
const started = performance.now();
kiln.setSeed(3);
const ce = (logits, y) => kiln.crossEntropy(logits, y);

/** body: 784 -> 256 -> 128 (ReLU); head: 128 -> classes. */
class Net extends nn.Module {
  constructor(classes, seed) {
    super();
    this.body = new nn.Sequential(new nn.Linear(784, 256, { seed }), new nn.ReLU(), new nn.Linear(256, 128, { seed: seed + 1 }), new nn.ReLU());
    this.head = new nn.Linear(128, classes, { seed: seed + 2 });
  }
  forward(x) {
    return this.head.forward(this.body.forward(x));
  }
}

const testAccuracy = async (model, split, pixels) =>
  (await kiln.evaluate(model, kiln.train.testSet(loader(split, pixels, { batchSize: 1024 })), { loss: ce, metrics: ['accuracy'] })).accuracy;

// 1. Pretrain on digits 0-4 and save the model (safetensors + config).
const a = mnistSplits({ seed: 42, digits: [0, 1, 2, 3, 4] });
console.log(`task A (digits 0-4): ${a.train.n} training examples`);
const pretrained = new Net(5, 100);
const optA = new optim.Adam(pretrained.parameters(), { lr: 1e-3 });
await kiln.fit(pretrained, loader(a.train, a.pixels, { batchSize: 128, shuffle: true, seed: 1 }), {
  epochs: 3, loss: ce, optimizer: optA, metrics: ['accuracy'], validationData: loader(a.val, a.pixels, { batchSize: 1024 }),
});
console.log(`task A test accuracy: ${(100 * (await testAccuracy(pretrained, a.test, a.pixels))).toFixed(2)}%`);
kiln.saveModel(`${OUT}/pretrained`, { stateDict: pretrained.stateDict(), config: { architecture: 'mlp', layers: [784, 256, 128, 5], task: 'digits 0-4' } });

// 2. Task B: digits 5-9 (relabelled 0-4), with PER_CLASS training examples per digit.
const b = mnistSplits({ seed: 42, digits: [5, 6, 7, 8, 9], perClass: PER_CLASS });
console.log(`\ntask B (digits 5-9): ${b.train.n} training examples, ${b.val.n} validation, ${b.test.n} test`);
const trainB = () => loader(b.train, b.pixels, { batchSize: 20, shuffle: true, seed: 2 });
const valB = loader(b.val, b.pixels, { batchSize: 1024 });

async function trainTaskB(name, model, optimizer, epochs) {
  console.log(`\n== ${name}`);
  const early = new kiln.train.EarlyStopping({ monitor: 'valAccuracy', patience: 10, restoreBestWeights: true });
  const history = await kiln.fit(model, trainB(), { epochs, loss: ce, optimizer, metrics: ['accuracy'], validationData: valB, callbacks: [early], verbose: 0 });
  const best = Math.max(...history.epochs.map((e) => e.valAccuracy));
  console.log(`${history.epochs.length} epochs; best validation accuracy ${(100 * best).toFixed(2)}% (epoch ${early.bestEpoch})`);
}

// 2a. From scratch.
const scratch = new Net(5, 200);
await trainTaskB('from scratch', scratch, new optim.Adam(scratch.parameters(), { lr: 1e-3 }), 60);

// 2b. Fine-tuned: load the saved body into a model with a new head (the head's keys are left out).
const tuned = new Net(5, 300);
const saved = kiln.loadModel(`${OUT}/pretrained`).stateDict;
const bodyOnly = Object.fromEntries(Object.entries(saved).filter(([name]) => name.startsWith('body.')));
const { missingKeys } = tuned.loadStateDict(bodyOnly, { strict: false });
console.log(`\nloaded ${Object.keys(bodyOnly).length} body tensors from ${OUT}/pretrained; new (missing) keys: ${missingKeys.join(', ')}`);
kiln.dispose(Object.values(saved));
tuned.body.freeze();
await trainTaskB('fine-tune, phase 1: body frozen, head only', tuned, new optim.Adam(tuned.parameters(), { lr: 1e-2 }), 60);
tuned.body.unfreeze();
const groups = [
  { params: tuned.body.parameters(), lr: 5e-4 },
  { params: tuned.head.parameters(), lr: 1e-3 },
];
await trainTaskB('fine-tune, phase 2: all layers, body lr 5e-4, head lr 1e-3', tuned, new optim.Adam(groups, { lr: 1e-3 }), 60);

// 3. One test evaluation of each.
const scratchAcc = await testAccuracy(scratch, b.test, b.pixels);
const tunedAcc = await testAccuracy(tuned, b.test, b.pixels);
console.log(`\ntask B test accuracy with ${PER_CLASS} examples per digit:`);
console.log(`  from scratch: ${(100 * scratchAcc).toFixed(2)}%`);
console.log(`  fine-tuned:   ${(100 * tunedAcc).toFixed(2)}%  (${(100 * (tunedAcc - scratchAcc)).toFixed(2)} points better)`);
console.log(`wall time ${((performance.now() - started) / 60000).toFixed(1)} min`);
if (tunedAcc <= scratchAcc) process.exitCode = 1;
