/** Training: browser.ts's file-free part, plus the callbacks and plots that write files or serve pages. */

export * from './browser.js';
export { MetricsLogger } from './metrics-logger.js';
export { saveLearningCurves } from './plot-file.js';
export { ModelCheckpoint, resume, type ModelCheckpointOptions } from './checkpointing.js';
export { TensorBoard, SummaryWriter, type TensorBoardOptions } from './tensorboard/index.js';
export { Dashboard, type ServedDashboardOptions } from './dashboard/server.js';
