/**
 * End to end: a one-layer Transformer learns to reverse a sequence of digits. Output position i must
 * copy input position T−1−i, which only attention can fetch: a position-wise model (or an attention
 * whose gradients are wrong) stays near chance (10% per token). Held-out sequences are scored.
 */
import { expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import * as nn from '../../ts/nn/index.js';
import type { Tensor } from '../../ts/index.js';
import { forEachBackend, heavyIt } from '../backends.js';
import { prng } from '../helpers.js';

const [VOCAB, LENGTH, D_MODEL] = [10, 8, 32];

class Reverser extends nn.Module {
  readonly tokens = new nn.Embedding(VOCAB, D_MODEL, { seed: 1 });
  readonly positions = new nn.LearnedPositionalEmbedding(LENGTH, D_MODEL, { seed: 2, init: (shape, o) => nn.init.normal(shape, { ...o, gain: 0.5 }) });
  readonly layer = new nn.TransformerEncoderLayer(D_MODEL, 4, { dimFeedforward: 64, dropout: 0, seed: 3 });
  readonly norm = new nn.LayerNorm(D_MODEL);
  readonly head = new nn.Linear(D_MODEL, VOCAB, { seed: 4 });
  /** ids int32 [B, T] -> logits [B, T, VOCAB] */
  forward(ids: Tensor): Tensor {
    return this.head.forward(this.norm.forward(this.layer.forward(this.positions.forward(this.tokens.forward(ids)))));
  }
}

/** n random digit sequences and their reversals, as int32 [n, LENGTH]. */
function batch(n: number, rand: () => number): { x: Tensor; y: Tensor } {
  const xs = Int32Array.from({ length: n * LENGTH }, () => Math.floor(rand() * VOCAB));
  const ys = xs.map((_, i) => xs[Math.floor(i / LENGTH) * LENGTH + LENGTH - 1 - (i % LENGTH)]);
  return { x: kiln.tensor(xs, [n, LENGTH]), y: kiln.tensor(ys, [n, LENGTH]) };
}

function tokenAccuracy(model: Reverser, x: Tensor, y: Tensor): number {
  return kiln.noGrad(() => kiln.tidy(() => model.forward(x).argmax(2).equal(y).cast('float32').mean().dataSync()[0]));
}

forEachBackend((backend) => {
  const heavy = heavyIt(backend);
  heavy('a one-layer Transformer learns to reverse digit sequences (> 95% of held-out tokens)', () => {
    const before = kiln.memory().numTensors;
    const rand = prng(5);
    const model = new Reverser();
    const opt = new kiln.optim.Adam(model.parameters(), { lr: 3e-3 });
    const test = batch(256, prng(6));
    const initial = tokenAccuracy(model, test.x, test.y);
    const steps = 250;
    for (let step = 0; step < steps; step++) {
      const { x, y } = batch(64, rand);
      kiln.tidy(() => {
        opt.zeroGrad();
        kiln.crossEntropy(model.forward(x).reshape([-1, VOCAB]), y.reshape([-1])).backward();
        opt.step();
      });
      kiln.dispose([x, y]);
    }
    const trained = tokenAccuracy(model, test.x, test.y);
    expect(initial).toBeLessThan(0.2);
    expect(trained, `held-out token accuracy after ${steps} steps (initial ${initial})`).toBeGreaterThan(0.95);
    kiln.dispose([test.x, test.y]);
    opt.dispose();
    model.dispose();
    expect(kiln.memory().numTensors).toBe(before);
  });
});
