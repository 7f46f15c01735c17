// A small BERT: a bidirectional Transformer encoder trained on Moby-Dick by masked-token prediction
// (BERT's recipe: 15% of the words are chosen; 80% of those become <mask>, 10% a random word, 10%
// stay as they are; the model must recover the originals). Reports the masked-word accuracy on
// chapters it never saw, against the unigram baseline (always guess the most frequent word), and
// saves the model.
//
//   node examples/bert-mlm.mjs [--steps N] [--backend wasm]      (after `npm run setup`)
//
// Examples are word windows of random length (8..32) padded to 32, so the attention's key padding
// mask does real work: padding must not influence the words.
import * as kiln from 'kiln-ml';
import { elapsed, loadMobyDick, startRun, trainingPlan, windowBatches } from './lib/moby-dick.mjs';

const { data, nn, train } = kiln;
const OUT = 'out/bert-mlm';
const SEED = 11;
const { steps: STEPS, started } = startRun({ seed: SEED, steps: 1500 });

// 1. Data: words (lowercased, punctuation as tokens), the 2,000 most frequent ones; the rest <unk>.
const book = loadMobyDick();
const tokenizer = new data.WordTokenizer({ maxSize: 2000, minCount: 2 }).fit(book.train);
const trainIds = tokenizer.encode(book.train);
const valIds = tokenizer.encode(book.val);
const V = tokenizer.vocabSize;
console.log(`Moby-Dick: ${trainIds.length.toLocaleString('en-US')} training and ${valIds.length.toLocaleString('en-US')} validation words (14 held-out chapters), vocabulary ${V}`);

// 2. The model: token embeddings (N(0, 1)) plus the fixed sinusoidal position encoding, 4
// bidirectional pre-norm encoder layers, and a prediction head (Linear + GELU + LayerNorm + Linear
// over the vocabulary, as BERT's) applied only at the chosen positions. Measured here: with small
// N(0, 0.02²) learned token and position vectors and a head tied to the embeddings, the loss stayed
// near the unigram level for all 1,000 steps; this setup leaves it within the first few hundred.
// No dropout: a few minutes of training underfit this much text; dropout would only slow learning.
const CONFIG = { vocabSize: V, length: 32, dModel: 128, numHeads: 4, layers: 4, dropout: 0 };

class Bert extends nn.Module {
  constructor(c) {
    super();
    this.tokens = new nn.Embedding(c.vocabSize, c.dModel, { seed: SEED });
    this.positions = new nn.SinusoidalPositionalEncoding(c.dModel);
    this.layers = Array.from({ length: c.layers }, (_, i) => new nn.TransformerEncoderLayer(c.dModel, c.numHeads, { dropout: c.dropout, seed: SEED + 2 + i }));
    this.norm = new nn.LayerNorm(c.dModel);
    this.transform = new nn.Linear(c.dModel, c.dModel, { seed: SEED + 100 });
    this.headNorm = new nn.LayerNorm(c.dModel);
    this.decoder = new nn.Linear(c.dModel, c.vocabSize, { seed: SEED + 101 });
  }

  /** ids int32 [B, T] (0 = <pad>) -> contextual vectors [B, T, dModel]; padding is masked out of attention. */
  forward(ids) {
    const keyPaddingMask = ids.equal(data.PAD_ID);
    let x = this.positions.forward(this.tokens.forward(ids));
    for (const layer of this.layers) x = layer.forward(x, { keyPaddingMask });
    return this.norm.forward(x);
  }

  /** Vocabulary logits at flat positions (int32 [M], into B·T) of forward's output -> [M, vocab]. */
  predict(hidden, positions) {
    const h = this.headNorm.forward(this.transform.forward(hidden.reshape([-1, CONFIG.dModel]).gather(positions, 0)).gelu());
    return this.decoder.forward(h);
  }
}

const model = new Bert(CONFIG);
model.summary([CONFIG.length], { dtype: 'int32' });

/**
 * Masks a batch of windows: x int32 [B, T] (padded), y int32 [2, M] (row 0: flat positions of the
 * chosen words, row 1: the original words). `rand` decides which words and how they are corrupted.
 * <unk> is never chosen: guessing "some rare word" is not a prediction.
 */
function maskBatch(rows, rand) {
  const T = CONFIG.length;
  const x = new Int32Array(rows.length * T); // zeros: <pad>
  const positions = [];
  const targets = [];
  rows.forEach((row, b) => {
    const length = T / 4 + rand.int(T - T / 4 + 1);
    for (let t = 0; t < length; t++) {
      const word = row[t];
      let input = word;
      if (word !== data.UNK_ID && rand.next() < 0.15) {
        positions.push(b * T + t);
        targets.push(word);
        const r = rand.next();
        if (r < 0.8) input = data.MASK_ID;
        else if (r < 0.9) input = data.SPECIAL_TOKENS.length + rand.int(V - data.SPECIAL_TOKENS.length);
      }
      x[b * T + t] = input;
    }
  });
  return { x: kiln.tensor(x, [rows.length, T]), y: kiln.tensor(Int32Array.from([...positions, ...targets]), [2, positions.length]) };
}

/** Cross-entropy of the predictions at the chosen positions only. */
function mlmLoss(hidden, y) {
  const [positions, targets] = y.split(2, 0).map((r) => r.reshape([-1]));
  return kiln.crossEntropy(model.predict(hidden, positions), targets);
}

// 3. Training: AdamW with warm-up and cosine decay, stepped per batch (lib/moby-dick.mjs).
const BATCH = 64;
const { optimizer, epochs: EPOCHS, stepsPerEpoch: STEPS_PER_EPOCH, onStep } = trainingPlan(model, { lr: 2e-3, steps: STEPS });
const trainRand = new data.Random(SEED);
const trainData = windowBatches({ ids: trainIds, window: CONFIG.length, batchSize: BATCH, steps: STEPS_PER_EPOCH, seed: SEED, make: (rows) => maskBatch(rows, trainRand), onStep });
// Validation: fixed windows with a fixed masking (the same random choices every epoch).
const valBatches = () => {
  const rand = new data.Random(SEED + 1);
  return windowBatches({ ids: valIds, window: CONFIG.length, batchSize: 128, steps: 8, seed: SEED + 2, make: (rows) => maskBatch(rows, rand), fixed: true });
};
const valData = { length: 8, [Symbol.iterator]: () => valBatches()[Symbol.iterator]() };

console.log(`\ntraining ${EPOCHS * STEPS_PER_EPOCH} steps of ${BATCH} windows of up to ${CONFIG.length} words (an "epoch" here is ${STEPS_PER_EPOCH} steps)`);
const history = await kiln.fit(model, trainData, { epochs: EPOCHS, loss: mlmLoss, optimizer, validationData: valData });

// 4. The figure: accuracy of the masked words on the held-out chapters, against always guessing
// the training text's most frequent word.
model.eval();
const counts = new Int32Array(V);
for (const id of trainIds) if (id >= data.SPECIAL_TOKENS.length) counts[id]++;
const mostFrequent = counts.indexOf(Math.max(...counts));
let [correct, baseline, total] = [0, 0, 0];
for (const { x, y } of valBatches()) {
  const [predicted, targets] = kiln.noGrad(() =>
    kiln.tidy(() => {
      const [positions, words] = y.split(2, 0).map((r) => r.reshape([-1]));
      return [model.predict(model.forward(x), positions).argmax(1).dataSync(), words.dataSync()];
    }),
  );
  targets.forEach((t, i) => {
    correct += predicted[i] === t ? 1 : 0;
    baseline += t === mostFrequent ? 1 : 0;
  });
  total += targets.length;
  kiln.dispose([x, y]);
}
const accuracy = correct / total;
console.log(`\nmasked-word accuracy on ${total} held-out masked words: ${(100 * accuracy).toFixed(1)}%`);
console.log(`unigram baseline (always "${tokenizer.decode([mostFrequent])}"): ${((100 * baseline) / total).toFixed(1)}%`);

// Fill in the blanks of a passage from the held-out chapters.
const ids = valIds.slice(200, 224);
const blanks = [3, 8, 14, 19];
const masked = ids.map((id, i) => (blanks.includes(i) ? data.MASK_ID : id));
const guesses = kiln.noGrad(() => kiln.tidy(() => model.predict(model.forward(kiln.tensor(masked, [1, masked.length])), kiln.tensor(Int32Array.from(blanks))).argmax(1).dataSync()));
const show = (words) => tokenizer.decode(words, { skipSpecial: false });
console.log(`\nheld-out text: ${show(ids)}`);
console.log(`masked:        ${show(masked)}`);
console.log(`filled in:     ${show(ids.map((id, i) => (blanks.includes(i) ? guesses[blanks.indexOf(i)] : id)))}`);

// 5. Save: weights + config (architecture and vocabulary).
kiln.saveModel(`${OUT}/model`, { stateDict: model.stateDict(), config: { model: CONFIG, tokenizer: tokenizer.toJSON() } });
train.saveLearningCurves(`${OUT}/learning-curves.html`, history);
console.log(`\nsaved ${OUT}/model/ and ${OUT}/learning-curves.html; total ${elapsed(started)}`);
console.log(`figure: masked-word accuracy ${(100 * accuracy).toFixed(1)}% (unigram baseline ${((100 * baseline) / total).toFixed(1)}%)`);
