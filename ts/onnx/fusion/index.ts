/**
 * Load-time fusion of an imported graph: patterns that exporters spell as several ONNX nodes and
 * Kiln runs as one op (attention.ts, gelu.ts, conv-concat.ts, conv.ts, layer-norm.ts, linear.ts,
 * linear-activation.ts), and
 * Linears that share an input as one product (linear-group.ts). Each fused node
 * keeps the nodes it replaces and runs them instead whenever its fast path does not apply
 * (fused-node.ts), so results never depend on fusion beyond float rounding. Fusion is for
 * inference: in training mode the original nodes run, so gradients reach every parameter as the
 * graph defines them.
 */

import type { OnnxNode } from '../node.js';
import { fuseAttention } from './attention.js';
import { fuseConv } from './conv.js';
import { fuseConvConcat } from './conv-concat.js';
import type { FusedNode } from './fused-node.js';
import { fuseGelu } from './gelu.js';
import { GraphIndex } from './graph.js';
import { fuseLayerNorm } from './layer-norm.js';
import { fuseLinear } from './linear.js';
import { fuseLinearActivation } from './linear-activation.js';
import { fuseLinearGroup } from './linear-group.js';

export { FusedNode } from './fused-node.js';

/** A pattern matcher; `taken` says which nodes an earlier match of this pass swallowed. */
type Fuser = (node: OnnxNode, graph: GraphIndex, taken: (node: OnnxNode) => boolean) => FusedNode | undefined;
// fuseConvConcat before fuseConv: it takes a Concat's convolutions together, fuseConv one by one;
// fuseLinearActivation after fuseGelu and fuseLinear: it joins their results; fuseLinearGroup
// after fuseLinear: it groups the fused Linears.
const FUSERS: Fuser[] = [fuseAttention, fuseGelu, fuseConvConcat, fuseConv, fuseLayerNorm, fuseLinear, fuseLinearActivation, fuseLinearGroup];

/** `nodes` (in graph order) with each recognised pattern replaced by one fused node, placed where its output was produced. */
export function fuseGraph(nodes: OnnxNode[], graphOutputs: string[]): OnnxNode[] {
  let current = nodes;
  for (const fuser of FUSERS) {
    const graph = new GraphIndex(current, graphOutputs);
    const swallowed = new Set<OnnxNode>();
    const fusedAt = new Map<OnnxNode, FusedNode>();
    for (const node of current) {
      if (swallowed.has(node)) continue;
      const fused = fuser(node, graph, (n) => swallowed.has(n));
      if (fused === undefined || fused.replaced.some((n) => swallowed.has(n))) continue;
      for (const n of fused.replaced) swallowed.add(n);
      fusedAt.set(current.find((n) => n.outputs.includes(fused.outputs[0]))!, fused);
    }
    current = current.flatMap((n) => (fusedAt.has(n) ? [fusedAt.get(n)!] : swallowed.has(n) ? [] : [n]));
  }
  return current;
}
