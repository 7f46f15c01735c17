// Fine-tuning an imported ONNX model. A small CNN arrives as an ONNX file (here written by
// tests/onnx/fixtures/small_cnn.py with numpy and the `onnx` package, standing in for a
// torch.onnx.export); Kiln loads it as an nn.Module, freezes its
// first convolution, fine-tunes the rest on MNIST with fit, and reports test accuracy before and after.
//
//   node examples/onnx-finetune.mjs [--backend wasm]      (after `npm run setup`)
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import * as kiln from 'kiln-ml';
import { ensurePython } from '../scripts/python.mjs';

const backend = process.argv.includes('--backend') ? process.argv[process.argv.indexOf('--backend') + 1] : 'native';
kiln.setBackend(backend);

// 1. The ONNX file (the Python environment comes from scripts/python.mjs).
mkdirSync('out', { recursive: true });
const python = ensurePython(['numpy', 'onnx']);
const made = spawnSync(python, ['tests/onnx/fixtures/small_cnn.py', 'out/small_cnn.onnx'], { stdio: 'inherit' });
if (made.status !== 0) process.exit(1);

// 2. Import: initializers become parameters under their ONNX names.
console.log('ops used:', kiln.onnx.check('out/small_cnn.onnx').opTypes.join(', '));
const model = kiln.onnx.load('out/small_cnn.onnx');
console.log(`inputs ${JSON.stringify(model.inputs.map((i) => [i.name, i.shape]))}, outputs ${model.outputNames}`);
console.log(`${model.numParameters().toLocaleString('en-US')} parameters: ${model.namedParameters().map(([n, p]) => `${n} [${p.shape}]`).join(', ')}`);

// 3. MNIST: 4,096 training images, the first 2,000 test images.
const mnist = kiln.data.loadMnist();
const images = (pixels, from, n) => kiln.tensor(Float32Array.from(pixels.subarray(from * 784, (from + n) * 784), (v) => v / 255), [n, 1, 28, 28]);
const testX = images(mnist.testImages, 0, 2000);
const testY = Int32Array.from(mnist.testLabels.subarray(0, 2000));
const accuracy = () =>
  kiln.tidy(() => {
    model.eval();
    const predicted = kiln.noGrad(() => model.forward(testX)).argmax(1).dataSync();
    return predicted.reduce((n, p, i) => n + (p === testY[i] ? 1 : 0), 0) / testY.length;
  });
console.log(`test accuracy of the imported weights: ${(100 * accuracy()).toFixed(1)}%`);

// 4. Fine-tune all but the first convolution.
model.stateDict()['conv1.weight'].setRequiresGrad(false);
const batches = {
  length: 64,
  *[Symbol.iterator]() {
    for (let i = 0; i < 4096; i += 64) yield { x: images(mnist.trainImages, i, 64), y: kiln.tensor(mnist.trainLabels.subarray(i, i + 64), [64], 'int32') };
  },
};
const optimizer = new kiln.optim.Adam(model.parameters().filter((p) => p.requiresGrad), { lr: 2e-3 });
await kiln.fit(model, batches, { epochs: 3, loss: (out, y) => kiln.crossEntropy(out, y), optimizer, metrics: ['accuracy'] });
console.log(`test accuracy after fine-tuning: ${(100 * accuracy()).toFixed(1)}%`);
