/**
 * The `kiln.losses` namespace: the losses of losses.ts and NT-Xent from contrastive.ts. Gathered
 * here rather than re-exported by losses.ts, because contrastive.ts builds on losses.ts's
 * cross-entropy and a re-export back would make an import circle (docs/architecture.md).
 */

export * from './losses.js';
export { ntXent, type NtXentOptions } from './contrastive.js';
