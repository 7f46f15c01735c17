// A small GPT: a decoder-only Transformer (causal self-attention) trained on Moby-Dick to predict
// the next character, self-supervised. Reports the validation loss and perplexity on chapters it
// never saw, samples text from the trained model, and saves it.
//
//   node examples/gpt.mjs [--steps N] [--backend wasm]      (after `npm run setup`)
//
// Characters, not words: ~90 symbols, so the model spends its capacity on spelling, words and
// punctuation, and a few minutes of training on 2 cores give text that reads like English.
import * as kiln from 'kiln-ml';
import { elapsed, flat, loadMobyDick, startRun, trainingPlan, windowBatches } from './lib/moby-dick.mjs';

const { data, nn, train } = kiln;
const OUT = 'out/gpt';
const SEED = 7;
const { steps: STEPS, started } = startRun({ seed: SEED, steps: 1000 });

// 1. Data: the book's chapters, the last 14 held out; characters as tokens.
const book = loadMobyDick();
const tokenizer = new data.CharTokenizer().fit(book.train);
const trainIds = tokenizer.encode(book.train);
const valIds = tokenizer.encode(book.val);
console.log(`Moby-Dick: ${book.sections} sections, ${trainIds.length.toLocaleString('en-US')} training and ${valIds.length.toLocaleString('en-US')} validation characters, vocabulary ${tokenizer.vocabSize}`);

// 2. The model: token + learned position embeddings, 4 causal pre-norm blocks, a final norm and
// a linear head over the vocabulary.
// No dropout: a few minutes of training underfit this much text; dropout would only slow learning.
const CONFIG = { vocabSize: tokenizer.vocabSize, context: 128, dModel: 128, numHeads: 4, layers: 4, dropout: 0 };

class GPT extends nn.Module {
  constructor(c) {
    super();
    this.c = c;
    this.tokens = new nn.Embedding(c.vocabSize, c.dModel, { init: (s, o) => nn.init.normal(s, { ...o, gain: 0.02 }), seed: SEED });
    this.positions = new nn.LearnedPositionalEmbedding(c.context, c.dModel, { seed: SEED + 1 });
    this.blocks = Array.from({ length: c.layers }, (_, i) => new nn.TransformerEncoderLayer(c.dModel, c.numHeads, { dropout: c.dropout, seed: SEED + 2 + i }));
    this.norm = new nn.LayerNorm(c.dModel);
    this.head = new nn.Linear(c.dModel, c.vocabSize, { seed: SEED + 100 });
  }

  /** ids int32 [B, T] (T <= context) -> next-token logits [B, T, vocab] */
  forward(ids) {
    let x = this.positions.forward(this.tokens.forward(ids));
    for (const block of this.blocks) x = block.forward(x, { causal: true });
    return this.head.forward(this.norm.forward(x));
  }
}

const model = new GPT(CONFIG);
model.summary([CONFIG.context], { dtype: 'int32' });

// 3. Next-character prediction on random windows: x = chars t..t+T-1, y = chars t+1..t+T.
const BATCH = 16;
const { optimizer, epochs: EPOCHS, stepsPerEpoch: STEPS_PER_EPOCH, onStep } = trainingPlan(model, { lr: 3e-3, steps: STEPS });
const window = CONFIG.context + 1;
const nextToken = (rows) => {
  const ids = flat(rows);
  const x = kiln.tensor(Int32Array.from({ length: rows.length * CONFIG.context }, (_, i) => ids[Math.floor(i / CONFIG.context) * window + (i % CONFIG.context)]), [rows.length, CONFIG.context]);
  const y = kiln.tensor(Int32Array.from({ length: rows.length * CONFIG.context }, (_, i) => ids[Math.floor(i / CONFIG.context) * window + (i % CONFIG.context) + 1]), [rows.length, CONFIG.context]);
  return { x, y };
};
const trainData = windowBatches({ ids: trainIds, window, batchSize: BATCH, steps: STEPS_PER_EPOCH, seed: SEED, make: nextToken, onStep });
const valData = windowBatches({ ids: valIds, window, batchSize: 64, steps: 4, seed: SEED + 1, make: nextToken, fixed: true });
// crossEntropy takes the logits [B, T, vocab] with the targets [B, T] as they are.
const loss = (logits, y) => kiln.crossEntropy(logits, y);

console.log(`\ntraining ${EPOCHS * STEPS_PER_EPOCH} steps of ${BATCH} windows of ${CONFIG.context} characters (an "epoch" here is ${STEPS_PER_EPOCH} steps)`);
const history = await kiln.fit(model, trainData, { epochs: EPOCHS, loss, optimizer, validationData: valData, metrics: ['perplexity', 'bitsPerChar'] });

// 4. The figure: per-character validation loss, perplexity, bits per character, against the
// unigram model (character frequencies of the training text), which knows no context.
const last = history.epochs[history.epochs.length - 1];
const counts = new Float64Array(tokenizer.vocabSize).fill(1);
for (const id of trainIds) counts[id]++;
const total = counts.reduce((a, b) => a + b, 0);
let unigram = 0;
for (const id of valIds) unigram -= Math.log(counts[id] / total);
unigram /= valIds.length;
console.log(`\nvalidation (14 unseen chapters): loss ${last.valLoss.toFixed(3)} nats/char, perplexity ${last.valPerplexity.toFixed(2)}, ${last.valBitsPerChar.toFixed(2)} bits/char`);
console.log(`unigram baseline: loss ${unigram.toFixed(3)} nats/char, perplexity ${Math.exp(unigram).toFixed(2)}`);

// 5. Sampling: feed the last `context` characters, sample the next from softmax(logits / 0.8).
model.eval();
const rand = new data.Random(SEED);
function generate(prompt, length, temperature = 0.8) {
  const ids = Array.from(tokenizer.encode(prompt));
  for (let i = 0; i < length; i++) {
    const context = ids.slice(-CONFIG.context);
    const probs = kiln.noGrad(() =>
      kiln.tidy(() => {
        const logits = model.forward(kiln.tensor(Int32Array.from(context), [1, context.length]));
        return logits.slice([0, context.length - 1, 0], [1, 1, CONFIG.vocabSize]).div(temperature).softmax(-1).dataSync();
      }),
    );
    let u = rand.next();
    let next = probs.length - 1;
    for (let k = 0; k < probs.length; k++) {
      u -= probs[k];
      if (u <= 0) {
        next = k;
        break;
      }
    }
    ids.push(next);
  }
  return tokenizer.decode(ids);
}
const prompt = 'The whale';
console.log(`\nsample (prompt "${prompt}", temperature 0.8):\n---\n${generate(prompt, 400)}\n---`);

// 6. Save: weights + config (architecture and the tokenizer's vocabulary).
kiln.saveModel(`${OUT}/model`, { stateDict: model.stateDict(), config: { model: CONFIG, tokenizer: tokenizer.toJSON() } });
await train.saveLearningCurves(`${OUT}/learning-curves.html`, history);
console.log(`\nsaved ${OUT}/model/ and ${OUT}/learning-curves.html; total ${elapsed(started)}`);
console.log(`figure: validation perplexity ${Math.exp(last.valLoss).toFixed(2)} per character (unigram ${Math.exp(unigram).toFixed(2)})`);
