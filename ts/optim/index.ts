export { Optimizer, type OptimizerOptions, type OptimizerState, type ParamGroup } from './optimizer.js';
export { SGD, Adam, AdamW, RMSProp, AdaGrad, type SgdOptions, type AdamOptions, type RmsPropOptions } from './rules.js';
export { StepDecay, WarmupCosine, ReduceLROnPlateau, type Schedule } from './schedules.js';
