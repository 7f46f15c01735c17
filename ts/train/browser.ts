/**
 * Training without a file system (the browser entry's `kiln.train`): fit, evaluate and predict,
 * the callbacks that keep their state in memory (early stopping, LR schedules), metrics and the
 * learning-curves page as a string. The Node entry (index.ts) adds the callbacks that write files.
 */

export { fit, evaluate, predict, testSet, type FitOptions, type StepInfo, type History, type EvaluateOptions, type LossFn, type NonFinitePolicy } from './fit.js';
export { EarlyStopping, LRScheduler, type Callback, type TrainingContext } from './callbacks.js';
export { correctCount, type MetricName } from './metrics.js';
export type { TrainableModel, Batch, BatchSource, Logs } from './types.js';
export { learningCurvesHtml } from './plot.js';
