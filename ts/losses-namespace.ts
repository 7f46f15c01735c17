/**
 * The `kiln.losses` namespace: the losses of losses.ts and NT-Xent from contrastive.ts. Gathered
 * here rather than re-exported by losses.ts, because contrastive.ts builds on losses.ts's
 * cross-entropy and a re-export back would make an import circle (docs/architecture.md).
 */

export * from './losses.js';
export { type NtXentOptions } from './contrastive.js';

// Named in their errors (ts/named-errors.ts); kiln.* re-exports these same functions (core-api.ts).
import { namedFunction, namedFunctions } from './named-errors.js';
import * as lossFunctions from './losses.js';
import * as contrastive from './contrastive.js';

const named = namedFunctions(lossFunctions);
/** @function */ export const crossEntropy = named.crossEntropy;
/** @function */ export const binaryCrossEntropy = named.binaryCrossEntropy;
/** @function */ export const mse = named.mse;
/** @function */ export const huber = named.huber;
/** @function */ export const klDivergence = named.klDivergence;
/** @function */ export const gaussianKl = named.gaussianKl;
/** @function */ export const distillationLoss = named.distillationLoss;
/** @function */ export const ntXent = namedFunction('ntXent', contrastive.ntXent);
