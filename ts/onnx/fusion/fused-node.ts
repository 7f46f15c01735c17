/**
 * A fused node: several ONNX nodes recognised as one pattern (attention, GELU) and run as one Kiln
 * op. Its fast path may decline at run time (shapes the fused kernel does not take, constants
 * that differ from the pattern's, training mode): then the original nodes run one by one, exactly
 * as without fusion, so fusing never changes what a graph computes, only how fast.
 */

import type { Tensor } from '../../tensor.js';
import { OnnxNode, type Inputs, type Prepared, type RunContext } from '../node.js';
import { OPS } from '../ops/index.js';

/**
 * The fused computation resolved for these inputs (checks made, constants read: see Prepared and
 * RunContext.constant); undefined to decline (the original nodes then run).
 */
export type FastPath = (inputs: Inputs, context: RunContext) => Prepared | undefined;

export class FusedNode extends OnnxNode {
  constructor(
    /** The pattern's name ('Attention', 'Gelu'). */
    readonly pattern: string,
    /** The nodes it replaces, in graph order. */
    readonly replaced: OnnxNode[],
    inputs: string[],
    /** The value it produces, or values (a group of products of one input: linear-group.ts). */
    output: string | string[],
    readonly fastPath: FastPath,
    /** Drops what the fast path keeps between runs (conv.ts's folded filters): the parameters may have changed. */
    readonly forget: () => void = () => {},
  ) {
    const last = replaced[replaced.length - 1];
    super({ opType: `${pattern} (fused ${replaced.map((n) => n.opType).join(', ')})`, name: replaced.map((n) => n.name).join('+'), input: inputs, output: typeof output === 'string' ? [output] : output }, 0, last.opset);
  }

  /** The fused op resolved for these inputs (Prepared), or undefined when it declines or in training (the replaced nodes run). */
  prepare(inputs: Inputs, context: RunContext): Prepared | undefined {
    return context.training ? undefined : this.fastPath(inputs, context);
  }

  /** Runs the fused op, or the replaced nodes when the fast path declines. */
  run(inputs: Inputs, context: RunContext): Tensor[] {
    const prepared = this.prepare(inputs, { training: context.training });
    return prepared !== undefined ? prepared(inputs) : this.#runReplaced(inputs, context);
  }

  /**
   * The original nodes in order (fused ones among them run their own way). Intermediates are the
   * enclosing tidy's to free (model.ts runs every node inside one); fusing never reaches a value
   * outside the pattern.
   */
  #runReplaced(inputs: Inputs, context: RunContext): Tensor[] {
    const values = new Map<string, Tensor | undefined>(this.inputs.map((name, i) => [name, inputs[i]]));
    for (const node of this.replaced) {
      const args = node.inputs.map((n) => (n === '' ? undefined : values.get(n)));
      let results: Tensor[];
      try {
        results = node instanceof FusedNode ? node.run(args, context) : OPS[node.opType](args, node, context);
      } catch (e) {
        const message = (e as Error).message;
        if (message.startsWith('onnx: ')) throw e;
        const shapes = args.map((t) => (t === undefined ? '-' : `${t.dtype} [${t.shape.join(', ')}]`)).join(', ');
        throw new Error(`${node.where}: ${message} (inputs: ${shapes})`);
      }
      node.outputs.forEach((name, i) => values.set(name, results[i]));
    }
    return this.outputs.map((name) => values.get(name)!);
  }
}
