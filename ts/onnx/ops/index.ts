/**
 * The one table from ONNX op type (default domain) to its implementation on Kiln's op set. Each
 * family lives in its own module; an op type missing here is reported at load time.
 */

import { input, type OpImpl, type PrepareImpl } from '../node.js';
import { attentionOps } from './attention.js';
import { convOps } from './conv.js';
import { elementwiseOps } from './elementwise.js';
import { extraOps } from './extra.js';
import { linearOps, linearPrepared } from './linear.js';
import { normalizationOps, normalizationPrepared } from './normalization.js';
import { poolOps } from './pool.js';
import { recurrentOps } from './recurrent.js';
import { reduceOps, reducePrepared } from './reduce.js';
import { resizeOps } from './resize.js';
import { shapeOps, shapePrepared } from './shape.js';

export const OPS: Readonly<Record<string, OpImpl>> = {
  ...elementwiseOps,
  ...linearOps,
  ...convOps,
  ...poolOps,
  ...normalizationOps,
  ...reduceOps,
  ...shapeOps,
  ...recurrentOps,
  ...resizeOps,
  ...extraOps,
  ...attentionOps,
};

/** Op types with a prepared form (../node.ts, Prepared) for compiled runs (../replay.ts); the others run as OPS runs them. */
export const PREPARED_OPS: Readonly<Record<string, PrepareImpl>> = {
  ...shapePrepared,
  ...normalizationPrepared,
  ...linearPrepared,
  ...reducePrepared,
  // The identity: its result is its input (a missing one throws, and the node runs to report it).
  Identity: (inputs, node) => (input(inputs, 0, node), (a) => [a[0]!]),
};

/** The op types Kiln imports, sorted (for docs and messages). */
export function supportedOps(): string[] {
  return Object.keys(OPS).sort();
}
