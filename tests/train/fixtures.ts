/**
 * A hand-written model and synthetic data for the training-loop tests. The model is a 2-layer
 * MLP made of raw leaf tensors (not nn.Module), implementing TrainableModel directly.
 *
 * The data is XOR-like: class = (x0 · x1 > 0), points kept away from the axes. No linear model
 * gets much above chance, so reaching high accuracy needs working gradients through the hidden
 * layer and a working optimizer.
 */
import * as kiln from '../../ts/index.js';
import type { Tensor } from '../../ts/index.js';
import type { Batch, BatchSource, TrainableModel } from '../../ts/train/index.js';
import { prng } from '../helpers.js';

export class TinyMlp implements TrainableModel {
  params: Record<string, Tensor>;
  training = true;

  constructor(inputs: number, hidden: number, outputs: number, seed = 1) {
    const init = (shape: number[], fanIn: number, s: number) => kiln.keep(kiln.randn(shape, { seed: s, std: Math.sqrt(2 / fanIn) }).setRequiresGrad());
    this.params = {
      w1: init([inputs, hidden], inputs, seed),
      b1: kiln.keep(kiln.zeros([hidden]).setRequiresGrad()),
      w2: init([hidden, outputs], hidden, seed + 1),
      b2: kiln.keep(kiln.zeros([outputs]).setRequiresGrad()),
    };
  }

  /** [batch, inputs] -> [batch, outputs] logits */
  forward(x: Tensor): Tensor {
    const { w1, b1, w2, b2 } = this.params;
    return kiln.tidy(() => x.matmul(w1).add(b1).relu().matmul(w2).add(b2));
  }

  parameters(): Tensor[] {
    return Object.values(this.params);
  }

  train(): void {
    this.training = true;
  }

  eval(): void {
    this.training = false;
  }

  stateDict(): Record<string, Tensor> {
    return { ...this.params };
  }

  /** Copies the given values into the parameters in place (they keep their identity). */
  loadStateDict(state: Record<string, Tensor>): void {
    for (const [k, t] of Object.entries(state)) {
      const p = this.params[k];
      if (p === undefined) throw new Error(`TinyMlp.loadStateDict: unknown key ${k}`);
      kiln.assign(p, t);
    }
  }

  async weights(): Promise<Record<string, number[]>> {
    const out: Record<string, number[]> = {};
    for (const [k, t] of Object.entries(this.params)) out[k] = Array.from(await t.data());
    return out;
  }

  dispose(): void {
    kiln.dispose(Object.values(this.params));
  }
}

export interface Dataset {
  x: Float32Array;
  y: Int32Array;
  n: number;
  features: number;
}

/** XOR quadrants: x uniform in ±[0.2, 1] per coordinate, label (x0·x1 > 0). */
export function xorData(n: number, seed: number): Dataset {
  const r = prng(seed);
  const x = new Float32Array(n * 2);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const a = (r() < 0.5 ? -1 : 1) * (0.2 + 0.8 * r());
    const b = (r() < 0.5 ? -1 : 1) * (0.2 + 0.8 * r());
    x[2 * i] = a;
    x[2 * i + 1] = b;
    y[i] = a * b > 0 ? 1 : 0;
  }
  return { x, y, n, features: 2 };
}

/** Flips every label (a validation set the training makes worse). */
export function flipped(d: Dataset): Dataset {
  return { ...d, y: d.y.map((v) => 1 - v) };
}

/**
 * A re-iterable batch source making fresh tensors each epoch (the loop disposes them).
 * `poison(epoch, step)` may return true to put a NaN into that batch's inputs.
 */
export function batches(d: Dataset, batchSize: number, poison?: (epoch: number, step: number) => boolean): BatchSource {
  let epoch = 0;
  const count = Math.ceil(d.n / batchSize);
  return {
    length: count,
    *[Symbol.iterator](): Iterator<Batch> {
      epoch++;
      for (let s = 0; s < count; s++) {
        const lo = s * batchSize;
        const hi = Math.min(d.n, lo + batchSize);
        const xs = d.x.slice(lo * d.features, hi * d.features);
        if (poison?.(epoch, s + 1)) xs[0] = NaN;
        yield { x: kiln.tensor(xs, [hi - lo, d.features]), y: kiln.tensor(d.y.slice(lo, hi), [hi - lo]) };
      }
    },
  };
}

/** Fraction of rows whose argmax is the label, computed in JS from the logits. */
export async function accuracyOf(logits: Tensor, labels: Int32Array): Promise<number> {
  const v = await logits.data();
  const c = logits.shape[1];
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    let best = 0;
    for (let k = 1; k < c; k++) if (v[i * c + k] > v[i * c + best]) best = k;
    if (best === labels[i]) correct++;
  }
  return correct / labels.length;
}
