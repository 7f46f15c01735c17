export { fit, evaluate, predict, testSet, type FitOptions, type StepInfo, type History, type EvaluateOptions, type NonFinitePolicy } from './fit.js';
export { type LossFn, type StepContext, type StepResult, type TrainStep } from './step.js';
export { EarlyStopping, LRScheduler, MetricsLogger, type Callback, type BatchLogs, type TrainingContext } from './callbacks.js';
export * as metrics from './metrics/index.js';
export { metricNames, type Metric, type MetricSpec } from './metrics/index.js';
export type { TrainableModel, Batch, BatchSource, Inputs, Logs } from './types.js';
export type { InMemoryData } from './batches.js';
export { learningCurvesHtml, saveLearningCurves } from './plot.js';
export { ModelCheckpoint, resume, type ModelCheckpointOptions } from './checkpointing.js';
