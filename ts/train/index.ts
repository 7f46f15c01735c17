export { fit, evaluate, predict, testSet, type FitOptions, type StepInfo, type History, type EvaluateOptions, type LossFn, type NonFinitePolicy } from './fit.js';
export { EarlyStopping, LRScheduler, MetricsLogger, type Callback, type TrainingContext } from './callbacks.js';
export { correctCount, type MetricName } from './metrics.js';
export type { TrainableModel, Batch, BatchSource, Logs } from './types.js';
export { learningCurvesHtml, saveLearningCurves } from './plot.js';
export { ModelCheckpoint, resume, type ModelCheckpointOptions } from './checkpointing.js';
export { TensorBoard, SummaryWriter, type TensorBoardOptions } from './tensorboard/index.js';
export type { SampleFn } from './samples.js';
