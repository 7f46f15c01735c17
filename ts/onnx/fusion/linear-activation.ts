/**
 * A fused Linear (linear.ts, without a residual) whose output only a fused GELU (gelu.ts) reads, a
 * Transformer's feed-forward `GELU(x·W₁ᵀ + b₁)`, run as one kiln.linear with the GELU as its
 * activation: on the CPU each block of the product gets the GELU right after it is computed, by
 * the thread that computed it, while it is in that thread's cache, instead of a pass, an
 * allocation and a boundary call of its own. When either fast path declines (shapes, constants
 * other than GELU's) the Linear and the GELU run as they would unfused.
 */

import type { Inputs, OnnxNode, RunContext } from '../node.js';
import { FusedNode } from './fused-node.js';
import { GeluNode } from './gelu.js';
import type { GraphIndex } from './graph.js';
import { LinearNode } from './linear.js';

/** Matches a Linear whose sole reader is a GELU, from the Linear. */
export function fuseLinearActivation(node: OnnxNode, graph: GraphIndex): FusedNode | undefined {
  if (!(node instanceof LinearNode) || node.hasResidual) return undefined;
  const reader = graph.readers(node.outputs[0])[0];
  if (!(reader instanceof GeluNode) || graph.soleReader(node.outputs[0], reader.opType) !== reader || reader.inputs[0] !== node.outputs[0]) return undefined;
  const gelu = reader;
  // inputs: the Linear's (x, weight, bias, residual), then the GELU's constants.
  const inputs = [...node.inputs, ...gelu.inputs.slice(1)];
  const linearInputs = node.inputs.length;
  return new FusedNode('LinearGelu', [node, gelu], inputs, gelu.outputs[0], (args: Inputs, context: RunContext) => {
    const x = args[0];
    if (x === undefined || !gelu.constantsFit(x.rank, args.slice(linearInputs), context)) return undefined;
    // The product reads the Linear's inputs, the first of these.
    const product = node.productFor(args.slice(0, linearInputs), 'gelu');
    return product === undefined ? undefined : (a) => [product(a)];
  });
}
