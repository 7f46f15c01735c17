/**
 * GELU as exporters spell it, x · 0.5 · (1 + Erf(x / √2)), run as Kiln's one gelu kernel (the
 * exact erf form) instead of five nodes, one of them Erf, which Kiln composes from a dozen
 * elementwise ops. Two spellings are recognised (constants on either side of a Mul or Add):
 *
 *   Mul(Mul(x, 0.5), Add(Erf(Div(x, √2)), 1))     kiln.onnx.save
 *   Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5)     torch.onnx.export of nn.GELU()
 *
 * with Div(x, √2) also written Mul(x, 1/√2). The constants are checked at run time; other values
 * run the original nodes.
 */

import { gelu } from '../../ops/elementwise.js';
import { constantsIn, type Inputs, type OnnxNode, type RunContext } from '../node.js';
import { FusedNode } from './fused-node.js';
import { otherOperand as other, type GraphIndex } from './graph.js';
import { isScalar } from './scalars.js';

/** Matches the pattern around `erf` (an Erf node). */
export function fuseGelu(erf: OnnxNode, graph: GraphIndex): FusedNode | undefined {
  if (erf.opType !== 'Erf') return undefined;
  const scaled = graph.privateProducer(erf.inputs[0], 'Div') ?? graph.privateProducer(erf.inputs[0], 'Mul');
  const plusOne = graph.soleReader(erf.outputs[0], 'Add');
  const outer = plusOne && graph.soleReader(plusOne.outputs[0], 'Mul');
  if (scaled === undefined || plusOne === undefined || outer === undefined) return undefined;
  const oneName = other(plusOne, erf.outputs[0])!;
  const inner = other(outer, plusOne.outputs[0])!;
  // Div(x, √2) has x first; Mul(x, 1/√2) either way round.
  for (const side of scaled.opType === 'Div' ? [0] : [0, 1]) {
    const x = scaled.inputs[side];
    const fused = (replaced: OnnxNode[], halfName: string | undefined, output: string): FusedNode | undefined =>
      halfName === undefined ? undefined : geluNode(replaced, [x, scaled.inputs[1 - side], oneName, halfName], scaled.opType, output);
    const half = graph.privateProducer(inner, 'Mul');
    if (half !== undefined && other(half, x) !== undefined) return fused([half, scaled, erf, plusOne, outer], other(half, x), outer.outputs[0]);
    const last = inner === x ? graph.soleReader(outer.outputs[0], 'Mul') : undefined;
    if (last !== undefined) return fused([scaled, erf, plusOne, outer, last], other(last, outer.outputs[0]), last.outputs[0]);
  }
  return undefined;
}

/** inputs: x, the √2 (or 1/√2), the 1 and the 0.5, in that order. */
function geluNode(replaced: OnnxNode[], inputs: string[], scaleOp: string, output: string): GeluNode {
  return new GeluNode(replaced, inputs, output, scaleOp);
}

/** A fused GELU; linear-activation.ts takes it into the product before it. */
export class GeluNode extends FusedNode {
  constructor(
    replaced: OnnxNode[],
    inputs: string[],
    output: string,
    /** 'Div' (x / √2) or 'Mul' (x · 1/√2). */
    readonly scaleOp: string,
  ) {
    super('Gelu', replaced, inputs, output, (args: Inputs, context: RunContext) => {
      const x = args[0];
      return x !== undefined && x.dtype === 'float32' && this.constantsFit(x.rank, args.slice(1), context) ? (a) => [gelu(a[0]!)] : undefined;
    });
  }

  /**
   * Whether the constants (the √2 or 1/√2, the 1, the 0.5) are the pattern's, for an x of rank
   * `rank`, and model constants while a compiled run is recorded (their values are read once).
   */
  constantsFit(rank: number, [scale, one, half]: Inputs, context: RunContext): boolean {
    // A constant of higher rank than x would broadcast the result to its rank.
    if ([scale, one, half].some((c) => c !== undefined && c.rank > rank) || !constantsIn(context, [scale, one, half])) return false;
    const scaleFits = this.scaleOp === 'Div' ? isScalar(scale, Math.SQRT2) : isScalar(scale, Math.SQRT1_2);
    return scaleFits && isScalar(one, 1) && isScalar(half, 0.5);
  }
}
