/**
 * One node of an imported graph run on its input tensors, as OnnxModel.run and a compiled run
 * (replay.ts) both run it: an error names the node and its inputs' dtypes and shapes.
 */

import { tidy } from '../engine.js';
import type { Tensor } from '../tensor.js';
import { FusedNode } from './fusion/index.js';
import { LayoutNode } from './layout/index.js';
import type { Inputs, OnnxNode, Prepared, RunContext } from './node.js';
import { OPS, PREPARED_OPS } from './ops/index.js';

/**
 * Runs `node` on `args`: its op (or its fused or blocked form) in a tidy scope, which frees what
 * the op composes on the way (Gemm's product before the bias; the autograd record keeps what
 * backward needs), or `run` when given (a compiled run's prepared call).
 */
export function runNode(node: OnnxNode, args: Inputs, context: RunContext, run?: () => Tensor[]): Tensor[] {
  try {
    if (run !== undefined) return run();
    return tidy(() => (node instanceof FusedNode || node instanceof LayoutNode ? node.run(args, context) : OPS[node.opType](args, node, context)));
  } catch (e) {
    const message = (e as Error).message;
    if (message.startsWith('onnx: ')) throw e;
    const shapes = args.map((t) => (t === undefined ? '-' : `${t.dtype} [${t.shape.join(', ')}]`)).join(', ');
    throw new Error(`${node.where}: ${message} (inputs: ${shapes})`);
  }
}

/**
 * `node` resolved for `args` (Prepared: a fused or blocked node's fast path, a view op), or
 * undefined when it has none for them; if resolving throws, running the node reports it.
 */
export function prepareNode(node: OnnxNode, args: Inputs, context: RunContext): Prepared | undefined {
  try {
    if (node instanceof FusedNode || node instanceof LayoutNode) return node.prepare(args, context);
    return Object.hasOwn(PREPARED_OPS, node.opType) ? PREPARED_OPS[node.opType](args, node, context) : undefined;
  } catch {
    return undefined;
  }
}
