/**
 * Training without a file system (the browser entry's `kiln.train`): fit, evaluate and predict,
 * custom steps, the callbacks that keep their state in memory (early stopping, LR schedules),
 * metrics and the learning-curves page as a string. The Node entry (index.ts) adds the callbacks
 * that write files or serve pages (MetricsLogger, ModelCheckpoint, TensorBoard, Dashboard).
 */

export { fit, evaluate, predict, testSet, type FitOptions, type StepInfo, type History, type EvaluateOptions, type NonFinitePolicy } from './fit.js';
export { type LossFn, type StepContext, type StepResult, type TrainStep } from './step.js';
export { EarlyStopping, LRScheduler, type Callback, type BatchLogs, type TrainingContext } from './callbacks.js';
export * as metrics from './metrics/index.js';
export { metricNames, type Metric, type MetricSpec } from './metrics/index.js';
export type { TrainableModel, Batch, BatchSource, Inputs, Logs } from './types.js';
export type { InMemoryData } from './batches.js';
export { learningCurvesHtml } from './plot.js';
export type { SampleFn } from './samples.js';
export type { DashboardOptions } from './dashboard/callback.js';
export type { DashboardEvent } from './dashboard/events.js';
