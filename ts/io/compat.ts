/**
 * Does a saved state dict fit a model? Compares names, shapes and dtypes and reports every
 * difference at once, so a user loading the wrong checkpoint sees the whole picture in one error
 * (a renamed layer shows up as one missing plus one unexpected name).
 */

import type { Tensor } from '../tensor.js';

/** How two state dicts differ (`compareStateDicts`): missing and unexpected keys, and shape or dtype mismatches. */
export interface StateDictDiff {
  /** In the model, not in the checkpoint. */
  missing: string[];
  /** In the checkpoint, not in the model. */
  unexpected: string[];
  /** In both, with different shape or dtype; `model` and `checkpoint` read like 'float32 [3, 4]'. */
  mismatched: Array<{ name: string; model: string; checkpoint: string }>;
}

const describe = (t: Tensor) => `${t.dtype} [${t.shape.join(', ')}]`;

/** The differences between a model's state dict and a checkpoint's (empty lists when they fit). */
export function compareStateDicts(stateDict: Record<string, Tensor>, checkpointModel: Record<string, Tensor>): StateDictDiff {
  const has = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);
  const diff: StateDictDiff = { missing: [], unexpected: [], mismatched: [] };
  for (const [name, t] of Object.entries(stateDict)) {
    if (!has(checkpointModel, name)) {
      diff.missing.push(name);
      continue;
    }
    const c = checkpointModel[name];
    if (describe(t) !== describe(c)) diff.mismatched.push({ name, model: describe(t), checkpoint: describe(c) });
  }
  for (const name of Object.keys(checkpointModel)) if (!has(stateDict, name)) diff.unexpected.push(name);
  return diff;
}

/** A titled, indented list for error messages, cut after `limit` lines. */
export function listed(title: string, lines: string[], limit = 12): string {
  if (lines.length === 0) return '';
  const shown = lines.slice(0, limit).map((l) => `\n    ${l}`).join('');
  const more = lines.length > limit ? `\n    ... and ${lines.length - limit} more` : '';
  return `\n  ${title} (${lines.length}):${shown}${more}`;
}

/**
 * Throws unless `checkpointModel` has exactly the names of `stateDict`, each with the same shape and
 * dtype. The message lists the missing, unexpected and mismatched keys.
 */
export function checkCompatible(stateDict: Record<string, Tensor>, checkpointModel: Record<string, Tensor>): void {
  const d = compareStateDicts(stateDict, checkpointModel);
  if (d.missing.length + d.unexpected.length + d.mismatched.length === 0) return;
  throw new Error(
    'checkCompatible: the checkpoint does not match the model' +
      listed('missing from the checkpoint', d.missing) +
      listed('unexpected in the checkpoint', d.unexpected) +
      listed('shape or dtype mismatch', d.mismatched.map((m) => `${m.name}: model ${m.model}, checkpoint ${m.checkpoint}`)),
  );
}
