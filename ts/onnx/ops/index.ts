/**
 * The one table from ONNX op type (default domain) to its implementation on Kiln's op set. Each
 * family lives in its own module; an op type missing here is reported at load time.
 */

import type { OpImpl } from '../node.js';
import { attentionOps } from './attention.js';
import { convOps } from './conv.js';
import { elementwiseOps } from './elementwise.js';
import { extraOps } from './extra.js';
import { linearOps } from './linear.js';
import { normalizationOps } from './normalization.js';
import { poolOps } from './pool.js';
import { recurrentOps } from './recurrent.js';
import { reduceOps } from './reduce.js';
import { resizeOps } from './resize.js';
import { shapeOps } from './shape.js';

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

/** The op types Kiln imports, sorted (for docs and messages). */
export function supportedOps(): string[] {
  return Object.keys(OPS).sort();
}
