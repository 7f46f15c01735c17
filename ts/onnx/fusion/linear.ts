/**
 * A fully connected layer as exporters spell it, MatMul(x, Transpose(W)) or MatMul(x, B) followed
 * by Add(·, bias), and the residual Add after it when there is one (a Transformer's skip
 * connection, Add(h, Add(MatMul(·, W), bias))), run as one kiln.linear call: on the CPU its GEMM
 * starts from the bias plus the residual (no pass of their own over the output) and reads W's
 * transpose in place. kiln.onnx.save writes MatMul(x, Transpose(W)) + Add; torch.onnx.export
 * writes MatMul(x, B) + Add with B = Wᵀ stored. At run time the fast path checks that the weight
 * is a float32 matrix whose inner dim matches x, the bias a float32 [N] vector and the residual a
 * float32 tensor of the output's shape; anything else (a residual that broadcasts, batched
 * weights) runs the original nodes.
 */

import { linearFor } from '../../ops/prepared.js';
import { transpose } from '../../ops/shape.js';
import type { Tensor } from '../../tensor.js';
import type { Inputs, OnnxNode } from '../node.js';
import { FusedNode } from './fused-node.js';
import { otherOperand, type GraphIndex } from './graph.js';

/**
 * A fused Linear: inputs x, the weight (W [N, K] when `transposed`, else B [K, N]), the bias and
 * the residual ('' when absent). linear-group.ts joins several that read the same x.
 */
export class LinearNode extends FusedNode {
  constructor(
    replaced: OnnxNode[],
    inputs: string[],
    output: string,
    /** Whether the weight input is W [N, K] (the graph transposes it), rather than B = Wᵀ [K, N]. */
    readonly transposed: boolean,
    readonly hasBias: boolean,
    readonly hasResidual: boolean,
  ) {
    super('Linear', replaced, inputs, output, (args: Inputs) => {
      const product = this.productFor(args);
      return product === undefined ? undefined : (a) => [product(a)];
    });
  }

  /**
   * The fast path resolved for inputs like `args` (x, the weight, the bias, the residual), with
   * `activation` applied ('gelu': linear-activation.ts): a function of such inputs (read at each
   * call, weights included); undefined when it does not apply.
   */
  productFor(args: Inputs, activation?: string): ((inputs: Inputs) => Tensor) | undefined {
    const [x, weightOrB, bias, residual] = args as Array<Tensor | undefined>;
    if (x === undefined || weightOrB === undefined || x.dtype !== 'float32' || weightOrB.dtype !== 'float32' || weightOrB.rank !== 2 || x.rank < 1) return undefined;
    const [n, k] = this.transposed ? weightOrB.shape : [weightOrB.shape[1], weightOrB.shape[0]];
    if (x.shape[x.rank - 1] !== k) return undefined;
    if (this.hasBias && !isBiasOf(bias, n)) return undefined;
    const outShape = [...x.shape.slice(0, -1), n].join();
    if (this.hasResidual && (residual === undefined || residual.dtype !== 'float32' || residual.shape.join() !== outShape)) return undefined;
    const call = linearFor({ activation });
    if (this.transposed) return (a) => call(a[0]!, a[1]!, a[2], a[3]);
    return (a) => {
      // B = Wᵀ: linear reads W as B's transposed view, in place.
      const w = transpose(a[1]!);
      try {
        return call(a[0]!, w, a[2], a[3]);
      } finally {
        w.dispose();
      }
    };
  }
}

/** Whether `bias` is a float32 [n] vector. */
export function isBiasOf(bias: Tensor | undefined, n: number): bias is Tensor {
  return bias !== undefined && bias.dtype === 'float32' && bias.rank === 1 && bias.shape[0] === n;
}

/** Matches MatMul -> Add (a bias) and/or a Transpose of the weight, from `matmul`. */
export function fuseLinear(matmul: OnnxNode, graph: GraphIndex): FusedNode | undefined {
  if (matmul.opType !== 'MatMul') return undefined;
  const t = graph.privateProducer(matmul.inputs[1], 'Transpose');
  const perm = t?.ints('perm');
  const weightT = t !== undefined && (perm === undefined || perm.join() === '1,0') ? t : undefined;
  const add = graph.soleReader(matmul.outputs[0], 'Add');
  if (weightT === undefined && add === undefined) return undefined;
  const biasName = add === undefined ? '' : otherOperand(add, matmul.outputs[0])!;
  // The residual Add, only after a bias Add (a lone Add is taken as the bias).
  const skip = add && graph.soleReader(add.outputs[0], 'Add');
  const residualName = skip === undefined ? '' : otherOperand(skip, add!.outputs[0])!;
  const replaced = [weightT, matmul, add, skip].filter((n): n is OnnxNode => n !== undefined);
  // inputs: x, then W [N, K] (the Transpose's input) or B [K, N], then the bias and the residual.
  const inputs = [matmul.inputs[0], weightT?.inputs[0] ?? matmul.inputs[1], biasName, residualName];
  return new LinearNode(replaced, inputs, (skip ?? add ?? matmul).outputs[0], weightT !== undefined, add !== undefined, skip !== undefined);
}
