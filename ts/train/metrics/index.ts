/**
 * Metrics: the streaming interface, the built-ins, their names for `fit({ metrics })`, and
 * one-shot functions over a single set of outputs and targets.
 */

import type { Tensor } from '../../tensor.js';
import { Accuracy, ConfusionMatrix, PrecisionRecallF1, TopKAccuracy, classificationReport, type ClassificationReport } from './classification.js';
import { Auroc } from './auroc.js';
import { ErrorMetric, R2 } from './regression.js';
import { TokenCrossEntropy } from './language.js';
import { once, type Metric } from './metric.js';

export { Accuracy, ConfusionMatrix, PrecisionRecallF1, TopKAccuracy, classificationReport, type Averaging, type ClassificationReport } from './classification.js';
export { Auroc, binaryAuroc } from './auroc.js';
export { ErrorMetric, R2 } from './regression.js';
export { TokenCrossEntropy } from './language.js';
export { RunningSum, type Metric } from './metric.js';

const FACTORIES: Record<string, () => Metric> = {
  accuracy: () => new Accuracy(),
  precision: () => new PrecisionRecallF1('precision', 'macro'),
  recall: () => new PrecisionRecallF1('recall', 'macro'),
  f1: () => new PrecisionRecallF1('f1', 'macro'),
  microPrecision: () => new PrecisionRecallF1('precision', 'micro'),
  microRecall: () => new PrecisionRecallF1('recall', 'micro'),
  microF1: () => new PrecisionRecallF1('f1', 'micro'),
  perClassPrecision: () => new PrecisionRecallF1('precision', 'perClass'),
  perClassRecall: () => new PrecisionRecallF1('recall', 'perClass'),
  perClassF1: () => new PrecisionRecallF1('f1', 'perClass'),
  confusionMatrix: () => new ConfusionMatrix(),
  auroc: () => new Auroc(),
  mae: () => new ErrorMetric('mae'),
  mse: () => new ErrorMetric('mse'),
  rmse: () => new ErrorMetric('rmse'),
  r2: () => new R2(),
  perplexity: () => new TokenCrossEntropy('perplexity'),
  bitsPerChar: () => new TokenCrossEntropy('bitsPerChar'),
};

/** The metric names `fit` and `evaluate` accept ('top<k>Accuracy' for any k, e.g. 'top5Accuracy'). */
export const metricNames: readonly string[] = ['accuracy', 'top<k>Accuracy', ...Object.keys(FACTORIES).filter((n) => n !== 'accuracy')];

/** A built-in metric's name, or a Metric object (your own, or a built-in with options). */
export type MetricSpec = string | Metric;

/** A fresh metric for a name or the object itself; an unknown name is an Error listing the known ones. `op` names the caller. */
export function resolveMetric(op: string, spec: MetricSpec): Metric {
  if (typeof spec === 'object' && spec !== null && typeof spec.update === 'function' && typeof spec.compute === 'function' && typeof spec.reset === 'function') return spec;
  if (typeof spec === 'string') {
    const topK = /^top(\d+)Accuracy$/.exec(spec);
    if (topK) return new TopKAccuracy(Number(topK[1]));
    const factory = Object.hasOwn(FACTORIES, spec) ? FACTORIES[spec] : undefined;
    if (factory) return factory();
    throw new Error(`${op}: unknown metric '${spec}'; known metrics: ${metricNames.join(', ')} (or pass an object with name, update, compute and reset)`);
  }
  throw new Error(`${op}: a metric must be a name (${metricNames.join(', ')}) or an object with name, update, compute and reset, got ${String(spec)}`);
}

/** Fraction of rows whose highest score is the target. outputs [..., classes], targets int32 [...] -> number */
export function accuracy(outputs: Tensor, targets: Tensor): number {
  return once(new Accuracy(), outputs, targets);
}

/** Fraction of rows whose target is among the k highest scores. outputs [..., classes], targets int32 [...] -> number */
export function topKAccuracy(outputs: Tensor, targets: Tensor, k: number): number {
  return once(new TopKAccuracy(k), outputs, targets);
}

/** matrix[target][prediction] counts. outputs [..., classes] scores, targets int32 [...] -> number[classes][classes] */
export function confusionMatrix(outputs: Tensor, targets: Tensor): number[][] {
  const m = new ConfusionMatrix();
  try {
    m.update(outputs, targets);
    return m.matrix();
  } finally {
    m.reset();
  }
}

/** Per-class precision, recall and F1 with macro and micro averages. outputs [..., classes], targets int32 [...] */
export function precisionRecallF1(outputs: Tensor, targets: Tensor): ClassificationReport {
  return classificationReport(confusionMatrix(outputs, targets));
}

/** Area under the ROC curve (see Auroc for the accepted shapes). scores [batch] or [batch, classes], targets [batch] -> number */
export function auroc(scores: Tensor, targets: Tensor): number {
  return once(new Auroc(), scores, targets);
}

/** Mean absolute error over all elements. predictions and float32 targets of one shape -> number */
export function meanAbsoluteError(predictions: Tensor, targets: Tensor): number {
  return once(new ErrorMetric('mae'), predictions, targets);
}

/** Mean squared error over all elements. predictions and float32 targets of one shape -> number */
export function meanSquaredError(predictions: Tensor, targets: Tensor): number {
  return once(new ErrorMetric('mse'), predictions, targets);
}

/** Root mean squared error over all elements. predictions and float32 targets of one shape -> number */
export function rootMeanSquaredError(predictions: Tensor, targets: Tensor): number {
  return once(new ErrorMetric('rmse'), predictions, targets);
}

/** R², per column of [batch, outputs] (or of [batch]) and averaged. predictions and float32 targets of one shape -> number */
export function r2Score(predictions: Tensor, targets: Tensor): number {
  return once(new R2(), predictions, targets);
}

/** e^(mean cross-entropy per token). logits [..., vocab], targets int32 [...] -> number */
export function perplexity(logits: Tensor, targets: Tensor): number {
  return once(new TokenCrossEntropy('perplexity'), logits, targets);
}

/** Mean cross-entropy per token in bits. logits [..., vocab], targets int32 [...] -> number */
export function bitsPerChar(logits: Tensor, targets: Tensor): number {
  return once(new TokenCrossEntropy('bitsPerChar'), logits, targets);
}
