// A first look at Kiln's ops: fit a linear model y = Xw + b by gradient descent, with the
// gradients written out by hand in Kiln ops, to show matmul's transpose flags and tidy at work.
// (examples/mnist.mjs does the same kind of thing with autograd, nn and fit.)
// Run: node examples/linear-regression.mjs   (after `npm run setup`)
import * as kiln from 'kiln-ml';

console.log(`Kiln on the '${kiln.getBackend()}' backend: ${kiln.simdLevel()} kernels, ${kiln.numThreads()} threads\n`);

const samples = 4096;
const features = 64;
kiln.setSeed(7);

// Synthetic data from a known model, so we can check what the fit recovers.
const trueW = kiln.randn([features, 1], { seed: 1 });
const X = kiln.randn([samples, features], { seed: 2 });
const y = kiln.tidy(() => X.matmul(trueW).add(3).add(kiln.randn([samples, 1], { std: 0.1, seed: 3 })));

let w = kiln.zeros([features, 1]);
let b = kiln.scalar(0);
const lr = 0.1;
const start = kiln.memory();
const t0 = performance.now();
for (let step = 0; step <= 200; step++) {
  const [nextW, nextB, loss] = kiln.tidy(() => {
    const err = X.matmul(w).add(b).sub(y); // [samples, 1]
    const loss = err.square().mean();
    // d(loss)/dw = 2/n Xᵀ err, d(loss)/db = 2 mean(err); transposeA avoids copying X.
    const gradW = kiln.matmul(X, err, true, false).mul(2 / samples);
    const gradB = err.mean().mul(2);
    return [w.sub(gradW.mul(lr)), b.sub(gradB.mul(lr)), loss];
  });
  w.dispose();
  b.dispose();
  [w, b] = [nextW, nextB];
  if (step % 40 === 0) console.log(`step ${String(step).padStart(3)}  mse ${loss.dataSync()[0].toFixed(6)}`);
  loss.dispose();
}
const ms = performance.now() - t0;

const wError = kiln.tidy(() => w.sub(trueW).abs().max().dataSync()[0]);
console.log(`\nlearned bias ${b.dataSync()[0].toFixed(4)} (true 3), max |w - w_true| = ${wError.toExponential(2)}`);
console.log(`201 steps in ${ms.toFixed(0)} ms; live tensors before/after the loop: ${start.numTensors} / ${kiln.memory().numTensors}`);

// Errors name the op, the shapes and what was expected.
try {
  kiln.matmul(X, trueW, false, true);
} catch (e) {
  console.log(`\nA shape mistake is an Error, not a crash:\n  ${e.message}`);
}
