/**
 * The small MNIST MLP the quantization tests measure accuracy on: 784-128-10 trained for 5 epochs
 * of Adam on the first 4,000 training digits, scored on the first 2,000 test digits.
 */
import * as kiln from '../../ts/index.js';
import { nn } from '../../ts/index.js';

const TRAIN = 4000;
const TEST = 2000;

/** A trained MLP, a factory for fresh copies of its architecture, and its test-set accuracy. */
export interface TrainedMlp {
  model: nn.Sequential;
  /** A new untrained MLP of the same shape (load `model.stateDict()` into it). */
  make: () => nn.Sequential;
  /** Percent of the 2,000 test digits `m` classifies correctly. */
  accuracy: (m: nn.Module) => number;
  /** Frees the model and the data tensors. */
  dispose: () => void;
}

/** Trains the MLP on `mnist` with weight seeds `seeds` (one per Linear). */
export function trainMnistMlp(mnist: kiln.data.Mnist, seeds: [number, number]): TrainedMlp {
  const pixels = (images: Uint8Array, n: number) => kiln.tensor(Float32Array.from(images.subarray(0, n * 784), (v) => v / 255), [n, 784]);
  const xTrain = pixels(mnist.trainImages, TRAIN);
  const yTrain = kiln.tensor(Int32Array.from(mnist.trainLabels.subarray(0, TRAIN)));
  const xTest = pixels(mnist.testImages, TEST);
  const labels = mnist.testLabels.subarray(0, TEST);
  const make = () => new nn.Sequential(new nn.Linear(784, 128, { seed: seeds[0] }), new nn.ReLU(), new nn.Linear(128, 10, { seed: seeds[1] }));
  const model = make();
  const optimizer = new kiln.optim.Adam(model.parameters(), { lr: 2e-3 });
  for (let epoch = 0; epoch < 5; epoch++) {
    for (let start = 0; start < TRAIN; start += 100) {
      kiln.tidy(() => {
        const loss = kiln.crossEntropy(model.forward(xTrain.slice([start, 0], [100, -1])), yTrain.slice([start], [100]));
        optimizer.zeroGrad();
        loss.backward();
        optimizer.step();
      });
    }
  }
  optimizer.dispose();
  const accuracy = (m: nn.Module) =>
    kiln.noGrad(() => kiln.tidy(() => {
      const predicted = m.forward(xTest).argmax(-1).dataSync();
      return (100 * predicted.reduce((hits, p, i) => hits + (p === labels[i] ? 1 : 0), 0)) / TEST;
    }));
  return { model, make, accuracy, dispose: () => (model.dispose(), kiln.dispose([xTrain, yTrain, xTest])) };
}
