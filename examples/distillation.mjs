// Knowledge distillation on MNIST: a large teacher (784-1200-1200-10, dropout) teaches a small
// student (784-32-10 by default, 94x fewer parameters) through its temperature-softened outputs. The same
// student trained on the labels alone, with the same budget, is the baseline.
//
//   node examples/distillation.mjs [--epochs N] [--reuse-teacher]      (after `npm run setup`)
// The teacher is saved to out/distillation/teacher/; --reuse-teacher loads it instead of training.
import * as kiln from 'kiln-ml';
import { loader, mnistSplits } from './lib/mnist.mjs';

const { nn, optim } = kiln;
const args = process.argv.slice(2);
const EPOCHS = args.includes('--epochs') ? Number(args[args.indexOf('--epochs') + 1]) : 30;
const TEMPERATURE = args.includes('--temperature') ? Number(args[args.indexOf('--temperature') + 1]) : 4;
const ALPHA = args.includes('--alpha') ? Number(args[args.indexOf('--alpha') + 1]) : 0.9;
const TEACHER_DIR = 'out/distillation/teacher';
const SEED = 7;
const started = performance.now();
kiln.setSeed(SEED);

const { pixels, train, val, test } = mnistSplits({ seed: 42 });
const trainLoader = () => loader(train, pixels, { batchSize: 128, shuffle: true, seed: SEED });
const valLoader = loader(val, pixels, { batchSize: 1024 });
const ce = (logits, y) => kiln.crossEntropy(logits, y);
const count = (m) => m.parameters().reduce((s, p) => s + p.size, 0);

async function trainModel(name, model, loss, epochs) {
  console.log(`\n== ${name}: ${count(model).toLocaleString('en-US')} parameters`);
  const optimizer = new optim.Adam(model.parameters(), { lr: 1e-3 });
  const early = new kiln.train.EarlyStopping({ monitor: 'valAccuracy', patience: 4, restoreBestWeights: true });
  await kiln.fit(model, trainLoader(), { epochs, loss, optimizer, metrics: ['accuracy'], validationData: valLoader, callbacks: [early] });
  optimizer.dispose();
  return model;
}

// 1. The teacher.
const teacher = new nn.Sequential(
  new nn.Linear(pixels, 1200, { seed: 1 }), new nn.ReLU(), new nn.Dropout(0.3),
  new nn.Linear(1200, 1200, { seed: 2 }), new nn.ReLU(), new nn.Dropout(0.3),
  new nn.Linear(1200, 10, { seed: 3 }),
);
if (args.includes('--reuse-teacher')) {
  teacher.loadStateDict(kiln.loadModel(TEACHER_DIR).stateDict);
  console.log(`loaded the teacher from ${TEACHER_DIR}`);
} else {
  await trainModel('teacher', teacher, ce, 10);
  kiln.saveModel(TEACHER_DIR, { stateDict: teacher.stateDict(), config: { architecture: 'mlp', layers: [pixels, 1200, 1200, 10], dropout: 0.3 } });
}
teacher.eval();

// 2. The student on hard labels only, and 3. the same student (same initial weights) distilled.
const HIDDEN = args.includes('--hidden') ? Number(args[args.indexOf('--hidden') + 1]) : 32;
const student = (seed) => new nn.Sequential(new nn.Linear(pixels, HIDDEN, { seed }), new nn.ReLU(), new nn.Linear(HIDDEN, 10, { seed: seed + 1 }));
const alone = await trainModel('student on labels alone', student(10), ce, EPOCHS);
const distill = (logits, y, x) => kiln.distillationLoss(logits, kiln.noGrad(() => teacher.forward(x)), y, { temperature: TEMPERATURE, alpha: ALPHA });
const distilled = await trainModel(`student distilled (T ${TEMPERATURE}, alpha ${ALPHA})`, student(10), distill, EPOCHS);

// 4. Each model's one evaluation on the held-out test set (the same split for all three).
const testAccuracy = async (model) => {
  const testLoader = kiln.train.testSet(loader(test, pixels, { batchSize: 1024 }));
  return (await kiln.evaluate(model, testLoader, { loss: ce, metrics: ['accuracy'] })).accuracy;
};
const results = [
  ['teacher 784-1200-1200-10', count(teacher), await testAccuracy(teacher)],
  [`student 784-${HIDDEN}-10, labels only`, count(alone), await testAccuracy(alone)],
  [`student 784-${HIDDEN}-10, distilled`, count(distilled), await testAccuracy(distilled)],
];
console.log('\nmodel                              parameters   test accuracy');
for (const [name, n, acc] of results) console.log(`${name.padEnd(34)} ${String(n).padStart(10)}   ${(100 * acc).toFixed(2)}%`);
console.log(`\ndistillation gain for the student: ${(100 * (results[2][2] - results[1][2])).toFixed(2)} points; wall time ${((performance.now() - started) / 60000).toFixed(1)} min`);
