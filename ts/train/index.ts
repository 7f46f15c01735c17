/** Training: browser.ts's file-free part, plus the callbacks and plots that write files. */

export * from './browser.js';
export { MetricsLogger } from './metrics-logger.js';
export { saveLearningCurves } from './plot-file.js';
export { ModelCheckpoint, resume, type ModelCheckpointOptions } from './checkpointing.js';
