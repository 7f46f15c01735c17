// A quick judge of generated digits: an MLP classifier trained on real MNIST in seconds, and a
// "classifier score" of a set of images from its predictions (a poor man's Inception score).
// Recognizable, varied digits get confident predictions spread over all ten classes; noise does not.
import * as kiln from 'kiln-ml';

const { nn, optim, data, losses } = kiln;

/**
 * Trains pixels -> 256 -> 10 with Adam for `epochs` on x [n·pixels] in [0, 1], y [n] digits.
 * Returns the classifier (eval mode) and its accuracy on the held-out { x, y }.
 */
export function trainDigitClassifier(train, heldOut, pixels, { epochs = 3, seed = 3 } = {}) {
  const model = new nn.Sequential(new nn.Linear(pixels, 256, { seed }), new nn.ReLU(), new nn.Linear(256, 10, { seed: seed + 1 }));
  const optimizer = new optim.Adam(model.parameters(), { lr: 1e-3 });
  const rng = new data.Random(seed);
  const n = train.y.length;
  for (let epoch = 0; epoch < epochs; epoch++) {
    const order = rng.permutation(n);
    for (let start = 0; start + 128 <= n; start += 128) {
      const rows = order.subarray(start, start + 128);
      kiln.tidy(() => {
        optimizer.zeroGrad();
        const x = kiln.tensor(data.gatherRows(train.x, pixels, rows), [128, pixels]);
        const y = kiln.tensor(Int32Array.from(rows, (i) => train.y[i]), [128], 'int32');
        losses.crossEntropy(model.forward(x), y).backward();
        optimizer.step();
      });
    }
  }
  model.eval();
  const accuracy = kiln.noGrad(() => kiln.tidy(() => {
    const predicted = model.forward(kiln.tensor(heldOut.x, [heldOut.y.length, pixels])).argmax(1).dataSync();
    return predicted.reduce((hits, p, i) => hits + (p === heldOut.y[i] ? 1 : 0), 0) / heldOut.y.length;
  }));
  return { model, accuracy };
}

/**
 * Scores images [n, pixels] in [0, 1]: mean top-class confidence, entropy of the predicted-class
 * histogram (ln 10 = 2.30 when all digits are equally common), and exp(E_x KL(p(y|x) || p(y))),
 * the Inception-score formula (1 = useless, 10 = confident and perfectly varied).
 */
export function classifierScore(model, images) {
  return kiln.noGrad(() => kiln.tidy(() => {
    const probs = model.forward(images).softmax(1);
    const p = probs.dataSync();
    const n = images.shape[0];
    const marginal = new Float64Array(10);
    const counts = new Array(10).fill(0);
    let confidence = 0;
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let c = 0; c < 10; c++) {
        marginal[c] += p[i * 10 + c] / n;
        if (p[i * 10 + c] > p[i * 10 + best]) best = c;
      }
      counts[best]++;
      confidence += p[i * 10 + best] / n;
    }
    let kl = 0;
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < 10; c++) {
        const q = p[i * 10 + c];
        if (q > 0) kl += q * Math.log(q / marginal[c]) / n;
      }
    }
    const classEntropy = -counts.reduce((h, k) => (k > 0 ? h + (k / n) * Math.log(k / n) : h), 0);
    return { confidence, classEntropy, score: Math.exp(kl), counts };
  }));
}

/** One line for a score: "confidence 0.91, class entropy 2.25 nats, score 7.9, counts [..]". */
export function formatScore(s) {
  return `confidence ${s.confidence.toFixed(3)}, class entropy ${s.classEntropy.toFixed(2)} nats, score ${s.score.toFixed(2)}, class counts [${s.counts.join(' ')}]`;
}
