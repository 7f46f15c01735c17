// Quantization of the MNIST MLP (784-512-10): size, accuracy and speed of the float32, int8 W8A8
// (int8 weights per output channel x int8 activations per row, `activations: 'int8'`), int8 with
// float32 activations (weight-only, `activations: 'float32'`; the default of bits 8 on WASM) and
// int4 (per block of 32) models, on the native and WASM backends.
//
//   node examples/quantize-mnist.mjs [--model DIR] [--epochs N]     (after `npm run setup`)
//   node examples/quantize-mnist.mjs --cnn [--epochs N]
// Uses the model `npm start` saved (out/mnist/model, or --model DIR) if present, else trains one for
// --epochs (default 2). With --cnn: the CNN of the bench (conv3x3x32-pool-conv3x3x64-pool-dense128-
// dense10), trained here for --epochs (default 1). Accuracy is on the same held-out 15% test split
// as examples/mnist.mjs.
import { existsSync, statSync } from 'node:fs';
import * as kiln from 'kiln-ml';
import { allDigits } from './lib/mnist.mjs';

const { data, nn } = kiln;
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const CNN = args.includes('--cnn');
const MODEL_DIR = option('--model', 'out/mnist/model');
const EPOCHS = Number(option('--epochs', CNN ? 1 : 2));
const SEED = 42;
const OUT = CNN ? 'out/quantize-cnn' : 'out/quantize-mnist';
const started = performance.now();

// The data and split of examples/mnist.mjs (same seed, so its test digits were never trained on).
const { mnist, pixels, images, labels } = allDigits();
const split = data.trainValTestSplit(labels, { ratios: [0.7, 0.15, 0.15], stratify: true, seed: SEED });
const rows = (indices) => {
  const x = data.gatherRows(images, pixels, indices);
  data.scale(x, 1 / 255, x);
  return x;
};
const testX = rows(split.test);
const testY = data.gatherLabels(labels, split.test);

/** One input row's shape: flat pixels for the MLP, [1, 28, 28] for the CNN. */
const ROW = CNN ? [1, mnist.rows, mnist.cols] : [pixels];
const LAYERS = CNN ? 'conv3x3x32-pool-conv3x3x64-pool-dense128-dense10' : [pixels, 512, 10];
const build = () =>
  CNN
    ? new nn.Sequential(
        new nn.Conv2d(1, 32, 3, { padding: 'same', seed: SEED }), new nn.ReLU(), new nn.MaxPool2d(2),
        new nn.Conv2d(32, 64, 3, { padding: 'same', seed: SEED + 1 }), new nn.ReLU(), new nn.MaxPool2d(2),
        new nn.Flatten(), new nn.Linear(64 * 7 * 7, 128, { seed: SEED + 2 }), new nn.ReLU(), new nn.Linear(128, 10, { seed: SEED + 3 }),
      )
    : new nn.Sequential(new nn.Linear(pixels, 512, { seed: SEED }), new nn.ReLU(), new nn.Linear(512, 10, { seed: SEED + 1 }));

/** The float model: loaded from `npm start`'s save, or trained here. */
async function floatModel() {
  const model = build();
  if (!CNN && existsSync(`${MODEL_DIR}/model.safetensors`)) {
    const { stateDict } = kiln.loadModel(MODEL_DIR);
    model.loadStateDict(stateDict);
    kiln.dispose(stateDict);
    console.log(`loaded the float model from ${MODEL_DIR}`);
    return model;
  }
  console.log(CNN ? `training the CNN for ${EPOCHS} epoch(s)` : `no model at ${MODEL_DIR} (run \`npm start\` for the full one); training ${EPOCHS} epochs here`);
  const trainSet = new data.TensorDataset(rows(split.train), ROW, data.gatherLabels(labels, split.train));
  const loader = new data.DataLoader(trainSet, { batchSize: 128, shuffle: true, seed: SEED });
  const optimizer = new kiln.optim.Adam(model.parameters(), { lr: 1e-3 });
  await kiln.fit(model, loader, { epochs: EPOCHS, loss: (o, t) => kiln.crossEntropy(o, t), optimizer });
  optimizer.dispose();
  return model;
}

const VARIANTS = [
  { name: 'float32', bits: null },
  { name: 'int8-w8a8', bits: 8, activations: 'int8' },
  { name: 'int8-weights-only', bits: 8 },
  { name: 'int4', bits: 4 },
];

// Save each variant through safetensors; the file size is the model size.
const model = await floatModel();
for (const v of VARIANTS) {
  const m = build();
  m.loadStateDict(model.stateDict());
  if (v.bits !== null) kiln.quantize(m, { bits: v.bits, activations: v.activations });
  const config = { layers: LAYERS, quantization: kiln.quantizationConfig(m) };
  kiln.saveModel(`${OUT}/${v.name}`, { stateDict: m.stateDict(), config });
  v.bytes = statSync(`${OUT}/${v.name}/model.safetensors`).size;
  m.dispose();
}
model.dispose();

/** Rebuilds a saved variant on the active backend. */
function load(v) {
  const { stateDict, config } = kiln.loadModel(`${OUT}/${v.name}`);
  const m = build();
  if (config.quantization) kiln.quantize(m, config.quantization);
  m.loadStateDict(stateDict);
  kiln.dispose(stateDict);
  return m.eval();
}

function accuracy(m) {
  let hits = 0;
  const n = testY.length;
  for (let start = 0; start < n; start += 1024) {
    const count = Math.min(1024, n - start);
    kiln.tidy(() => {
      const x = kiln.tensor(testX.subarray(start * pixels, (start + count) * pixels), [count, ...ROW]);
      const predicted = kiln.noGrad(() => m.forward(x)).argmax(-1).dataSync();
      for (let i = 0; i < count; i++) hits += predicted[i] === testY[start + i] ? 1 : 0;
    });
  }
  return (100 * hits) / n;
}

/** Median ms per forward pass of a batch (readback included), after a warm-up. */
function msPerBatch(m, batch) {
  const x = kiln.tensor(testX.subarray(0, batch * pixels), [batch, ...ROW]);
  const once = () => kiln.tidy(() => kiln.noGrad(() => m.forward(x)).dataSync());
  const reps = batch === 1 ? 300 : 30;
  for (let i = 0; i < Math.min(20, reps); i++) once();
  const times = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    once();
    times.push(performance.now() - t0);
  }
  x.dispose();
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}

for (const backend of ['native', 'wasm']) {
  await kiln.setBackend(backend);
  console.log(`measuring on ${backend} (${kiln.simdLevel()}, ${kiln.numThreads()} threads)`);
  for (const v of VARIANTS) {
    const m = load(v);
    v[backend] = { accuracy: accuracy(m), b1: msPerBatch(m, 1), b256: msPerBatch(m, 256) };
    m.dispose();
  }
}

const f = (x, d = 3) => x.toFixed(d);
const lines = [
  '| model | size (safetensors) | test accuracy | native b1 ms | native b256 ms | wasm b1 ms | wasm b256 ms |',
  '|---|---:|---:|---:|---:|---:|---:|',
  ...VARIANTS.map((v) =>
    `| ${v.name} | ${v.bytes.toLocaleString('en-US')} B (${f(v.bytes / VARIANTS[0].bytes, 2)}x) | ${f(v.native.accuracy, 2)}% | ${f(v.native.b1)} | ${f(v.native.b256, 2)} | ${f(v.wasm.b1)} | ${f(v.wasm.b256, 2)} |`,
  ),
];
console.log(`\n${lines.join('\n')}\n`);
for (const v of VARIANTS) {
  if (Math.abs(v.native.accuracy - v.wasm.accuracy) > 0.02) console.log(`note: ${v.name} accuracy differs between backends (native ${v.native.accuracy}, wasm ${v.wasm.accuracy})`);
}
/** Accuracy change against float32, signed ('+0.06', '-0.14'). */
const drop = (v) => {
  const d = v.native.accuracy - VARIANTS[0].native.accuracy;
  return `${d >= 0 ? '+' : '-'}${f(Math.abs(d), 2)}`;
};
console.log(`int8 (W8A8): ${f(VARIANTS[0].bytes / VARIANTS[1].bytes, 2)}x smaller, accuracy ${drop(VARIANTS[1])} points (weights only: ${drop(VARIANTS[2])}); int4: ${f(VARIANTS[0].bytes / VARIANTS[3].bytes, 2)}x smaller, ${drop(VARIANTS[3])} points (test split of ${testY.length} digits)`);
console.log(`saved ${OUT}/{${VARIANTS.map((v) => v.name).join(',')}}/ in ${((performance.now() - started) / 1000).toFixed(1)} s`);
