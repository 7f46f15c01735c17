/**
 * Fused Linears that read the same input (a Transformer's Q, K and V projections, three
 * MatMul(x, Wᵀ) + Add in kiln.onnx.save's export) run as one product with their weights stacked,
 * [N1 + N2 + ..., K], and the result split into views, one per original output: one GEMM of N = 3d
 * instead of three of d (fewer, fuller tiles, one pass over x, one boundary call). The stacked
 * weight and bias are built on the first run from the initializers and kept, as conv.ts keeps its
 * folded filters, until the model forgets its fusions (a weight written, train(), loadStateDict).
 * When every member's sole reader is a Reshape that splits its last axis into heads ([..., N] ->
 * [..., H, D], one D for all), the group takes the Reshapes too and returns views of the product
 * reshaped to [..., ΣH, D]: a Reshape of a split view would copy it (a strided view reshapes by
 * copying), which at batch 8 cost as much as the single product saved. Members with a residual are
 * left alone; the group is placed where its first output was made, so every member's weight and
 * bias (and Reshape's target) must exist before its first member (initializers and constants do).
 */

import { isGradEnabled, noGrad } from '../../autograd.js';
import { keep, tidy } from '../../engine.js';
import { linearFor, viewsFor } from '../../ops/prepared.js';
import { concat, transpose } from '../../ops/shape.js';
import type { Tensor } from '../../tensor.js';
import { constantsIn, intValues, type Inputs, type OnnxNode, type RunContext } from '../node.js';
import { FusedNode } from './fused-node.js';
import type { GraphIndex } from './graph.js';
import { isBiasOf, LinearNode } from './linear.js';

/** Matches the fused Linears reading `first`'s input, from the earliest of them. */
export function fuseLinearGroup(first: OnnxNode, graph: GraphIndex, taken: (node: OnnxNode) => boolean): FusedNode | undefined {
  const joins = (n: OnnxNode): n is LinearNode => n instanceof LinearNode && !n.hasResidual && !taken(n);
  if (!joins(first)) return undefined;
  const x = first.inputs[0];
  const members = graph
    .readers(x)
    .filter(joins)
    .filter((n) => n.inputs[0] === x && n.hasBias === first.hasBias && n.inputs.slice(1).every((v) => v === '' || graph.availableBefore(v, first)));
  if (members.length < 2 || members[0] !== first) return undefined;
  const reshapes = members.map((m) => graph.soleReader(m.outputs[0], 'Reshape'));
  const heads = reshapes.every((r) => r !== undefined && r.opset >= 5 && (r.inputs[1] ?? '') !== '' && graph.availableBefore(r.inputs[1], first)) ? (reshapes as OnnxNode[]) : undefined;
  // inputs: x, then each member's weight and bias, then each Reshape's target.
  const inputs = [x, ...members.flatMap((m) => [m.inputs[1], m.inputs[2]]), ...(heads ?? []).map((r) => r.inputs[1])];
  const stack = new StackedWeights();
  return new FusedNode(
    'LinearGroup',
    [...members, ...(heads ?? [])],
    inputs,
    (heads ?? members).map((n) => n.outputs[0]),
    (args: Inputs, context: RunContext) => {
      const [input, ...rest] = args;
      // The stacked weight and the heads are kept in the prepared call: read from constants only.
      if (input === undefined || input.dtype !== 'float32' || input.rank < 1 || !constantsIn(context, rest)) return undefined;
      const stacked = stack.get(members, rest.slice(0, 2 * members.length), input.shape[input.rank - 1]);
      if (stacked === undefined) return undefined;
      const lead = input.shape.slice(0, -1);
      const byHeads = heads === undefined ? undefined : headSplit(heads, rest.slice(2 * members.length), lead, stacked.sizes);
      if (heads !== undefined && byHeads === undefined) return undefined;
      const { w, bias, sizes } = stacked;
      const product = linearFor();
      // The product split into its members' views (reshaped to heads first: see above); the
      // views keep its buffer.
      const views =
        byHeads === undefined
          ? viewsFor((impl, y) => impl.split(y, sizes, 0, lead.length))
          : viewsFor((impl, y) => {
              const byHead = impl.reshape(y, [...lead, byHeads.heads.reduce((a, h) => a + h, 0), byHeads.size]);
              try {
                return impl.split(byHead, byHeads.heads, 0, lead.length);
              } finally {
                impl.dispose(byHead);
              }
            });
      return (a) => {
        const y = product(a[0]!, w, bias);
        try {
          return views(y);
        } finally {
          y.dispose();
        }
      };
    },
    () => stack.forget(),
  );
}

/**
 * The heads each Reshape splits its member's output [...lead, N] into, and their one size D, when
 * every target reads [...lead, H, D] (ONNX's 0 copying a dim, one -1 inferred) with H·D = N;
 * undefined for any other target (the nodes then run one by one).
 */
function headSplit(reshapes: OnnxNode[], targets: Inputs, lead: readonly number[], sizes: number[]): { heads: number[]; size: number } | undefined {
  const heads: number[] = [];
  let size: number | undefined;
  for (const [i, node] of reshapes.entries()) {
    const target = targets[i];
    if (target === undefined || target.rank !== 1) return undefined;
    const allowZero = node.int('allowzero', 0) === 1;
    const n = sizes[i];
    const shape = intValues(target).map((d, j) => (d === 0 && !allowZero ? [...lead, n][j] : d));
    if (shape.length !== lead.length + 2 || lead.some((d, j) => shape[j] !== d)) return undefined;
    let [h, d] = shape.slice(-2);
    if (h === -1 && d > 0 && n % d === 0) h = n / d;
    else if (d === -1 && h > 0 && n % h === 0) d = n / h;
    if (!(h > 0 && d > 0 && h * d === n) || (size !== undefined && d !== size)) return undefined;
    size = d;
    heads.push(h);
  }
  return size === undefined ? undefined : { heads, size };
}

/** The members' weights stacked into one [ΣN, K] matrix (and their biases into one vector), built once and kept. */
class StackedWeights {
  #sources: Array<Tensor | undefined> = [];
  #stacked: { w: Tensor; bias: Tensor | undefined; sizes: number[] } | undefined;

  /**
   * The stacked weight for these parameters (each member's weight then bias): the kept one if it
   * was stacked from the same tensors, else stacked now. Undefined (the members run one by one)
   * when a weight is not a float32 matrix of inner dim `k`, a bias not a float32 [N], or
   * gradients could reach a parameter (the stacked copy would not pass them on).
   */
  get(members: LinearNode[], parameters: Array<Tensor | undefined>, k: number): { w: Tensor; bias: Tensor | undefined; sizes: number[] } | undefined {
    // Asked first: a stack kept from a run without gradients must not serve one with them.
    if (isGradEnabled() && parameters.some((t) => t?.requiresGrad)) return undefined;
    const same = this.#stacked !== undefined && this.#stacked.w.shape[1] === k && parameters.length === this.#sources.length && parameters.every((t, i) => t === this.#sources[i]);
    if (same) return this.#stacked;
    const weights: Tensor[] = [];
    const biases: Tensor[] = [];
    for (const [i, member] of members.entries()) {
      const [w, bias] = [parameters[2 * i], parameters[2 * i + 1]];
      if (w === undefined || w.dtype !== 'float32' || w.rank !== 2) return undefined;
      const n = member.transposed ? w.shape[0] : w.shape[1];
      if ((member.transposed ? w.shape[1] : w.shape[0]) !== k) return undefined;
      if (member.hasBias) {
        if (!isBiasOf(bias, n)) return undefined;
        biases.push(bias);
      }
      weights.push(w);
    }
    this.forget();
    this.#stacked = noGrad(() =>
      tidy(() => {
        const w = keep(concat(weights.map((w, i) => (members[i].transposed ? w : transpose(w))), 0));
        const bias = biases.length === 0 ? undefined : keep(concat(biases, 0));
        return { w, bias, sizes: weights.map((w, i) => (members[i].transposed ? w.shape[0] : w.shape[1])) };
      }),
    );
    this.#sources = [...parameters];
    return this.#stacked;
  }

  /** Drops the kept stack (the parameters may have changed); the next run stacks again. */
  forget(): void {
    this.#stacked?.w.dispose();
    this.#stacked?.bias?.dispose();
    this.#stacked = undefined;
    this.#sources = [];
  }
}
