/**
 * Area under the ROC curve. It depends on the ranking of every score of the epoch, so unlike the
 * running sums of the other metrics the scores are kept (on the device, as tensors) and read back
 * once at the end, where the area comes from the Mann-Whitney rank statistic.
 */

import { keep, tidy } from '../../engine.js';
import type { Tensor } from '../../tensor.js';
import { sub } from '../../ops/elementwise.js';
import { softmax } from '../../ops/reduce.js';
import { cast, reshape, slice } from '../../ops/shape.js';
import { detach } from '../../autograd.js';
import { describePair, type Metric } from './metric.js';

/**
 * AUROC of scores for binary labels (1 positive, 0 negative): the probability that a random
 * positive scores above a random negative, ties counting one half. NaN when one class is absent.
 */
export function binaryAuroc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  // Average ranks (1-based) over runs of tied scores.
  const ranks = new Float64Array(n);
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1]] === scores[order[i]]) j++;
    for (let k = i; k <= j; k++) ranks[order[k]] = (i + j) / 2 + 1;
    i = j + 1;
  }
  let positives = 0;
  let rankSum = 0;
  for (let i = 0; i < n; i++) {
    if (labels[i] === 1) {
      positives++;
      rankSum += ranks[i];
    }
  }
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) return NaN;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/**
 * AUROC as a streaming metric. Binary: outputs [batch] or [batch, 1] (a score or logit of the
 * positive class) or [batch, 2] (two class logits) with targets 0/1 [batch]. More classes:
 * outputs [batch, classes] logits, int32 targets [batch], averaged one-vs-rest over the classes
 * present (sklearn's multi_class='ovr', average='macro', on softmax probabilities).
 */
export class Auroc implements Metric {
  readonly name: string = 'auroc';
  private scores: Tensor[] = [];
  private targets: Tensor[] = [];
  private classes = 0;
  /** The scores and labels as `ready` read them; dropped by the next `update` or `reset`. */
  private fetched: { scores: number[]; labels: number[] } | null = null;

  update(outputs: Tensor, targets: Tensor): void {
    this.fetched = null;
    const rows = targets.shape[0];
    const shape = outputs.shape;
    const valid = targets.shape.length === 1 && shape[0] === rows && (shape.length === 1 || (shape.length === 2 && shape[1] >= 1));
    if (!valid) throw new Error(`${this.name}: expected scores [batch] or [batch, classes] and targets [batch], got ${describePair(outputs, targets)}`);
    const classes = shape.length === 1 || shape[1] <= 2 ? 2 : shape[1];
    if (this.classes !== 0 && this.classes !== classes) throw new Error(`${this.name}: a batch has ${classes} classes, earlier ones had ${this.classes}`);
    this.classes = classes;
    const kept = tidy(() => {
      const x = detach(outputs);
      // Two logits rank like their difference (softmax's p1 is monotone in it).
      const score = shape.length === 1 || shape[1] === 1 ? reshape(x, [rows]) : shape[1] === 2 ? reshape(sub(slice(x, [0, 1], [rows, 1]), slice(x, [0, 0], [rows, 1])), [rows]) : softmax(x, -1);
      return { score, target: cast(detach(targets), 'int32') };
    });
    this.scores.push(keep(kept.score));
    this.targets.push(keep(kept.target));
  }

  async ready(): Promise<void> {
    const all = async (ts: Tensor[]) => (await Promise.all(ts.map((t) => t.data()))).flatMap((d) => Array.from(d));
    this.fetched = { scores: await all(this.scores), labels: await all(this.targets) };
  }

  compute(): number {
    if (this.scores.length === 0) return NaN;
    const { scores, labels } = this.fetched ?? {
      scores: this.scores.flatMap((t) => Array.from(t.dataSync())),
      labels: this.targets.flatMap((t) => Array.from(t.dataSync())),
    };
    if (this.classes === 2) return binaryAuroc(scores, labels);
    const c = this.classes;
    const areas: number[] = [];
    for (let k = 0; k < c; k++) {
      const positive = labels.map((l) => (l === k ? 1 : 0));
      if (!positive.includes(1)) continue;
      areas.push(binaryAuroc(Array.from({ length: labels.length }, (_, i) => scores[i * c + k]), positive));
    }
    return areas.reduce((a, b) => a + b, 0) / areas.length;
  }

  reset(): void {
    this.fetched = null;
    for (const t of [...this.scores, ...this.targets]) t.dispose();
    this.scores = [];
    this.targets = [];
    this.classes = 0;
  }
}
