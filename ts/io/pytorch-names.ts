/**
 * Kiln's state-dict names against PyTorch's, layer by layer. Most Kiln layers already store
 * PyTorch's names and layouts (Linear, Conv2d, ConvTranspose2d, LayerNorm, Embedding, RNN/LSTM/GRU,
 * Sequential's '0.weight'); this module lists the ones that differ:
 *
 *   BatchNorm1d/2d        runningMean, runningVar      -> running_mean, running_var
 *                         (the numBatchesTracked count) -> num_batches_tracked (int64 scalar)
 *   MultiHeadAttention    qProj/kProj/vProj .weight     -> in_proj_weight (stacked on dim 0), or
 *                                                          q_proj_weight, k_proj_weight, v_proj_weight
 *                                                          when kDim or vDim differ from dModel
 *                         qProj/kProj/vProj .bias       -> in_proj_bias (stacked)
 *                         outProj                       -> out_proj
 *   Transformer*Layer     selfAttn -> self_attn, crossAttn -> multihead_attn,
 *                         feedForward.linear1/linear2   -> linear1/linear2
 *
 * The result is a plan: one entry per PyTorch tensor, saying which Kiln tensors it is made of.
 * pytorch.ts uses it in both directions.
 */

import { Tensor } from '../tensor.js';
import type { AnyModule } from '../nn/module.js';
import { BatchNorm1d, BatchNorm2d } from '../nn/batchnorm.js';
import { MultiHeadAttention } from '../nn/attention.js';
import { TransformerDecoderLayer, TransformerEncoderLayer } from '../nn/transformer.js';

/** One PyTorch state-dict tensor and where its values live in Kiln. */
export interface TorchEntry {
  /** PyTorch's name, e.g. 'encoder.0.self_attn.in_proj_weight'. */
  torch: string;
  /** The Kiln state-dict names it is made of: one, or several stacked along dim 0 (in_proj_*). */
  kiln: string[];
  /** For num_batches_tracked: the BatchNorm whose counter it is (then `kiln` is empty). */
  counter?: BatchNorm1d | BatchNorm2d;
}

type BatchNorm = BatchNorm1d | BatchNorm2d;

/** How one module kind's own tensors and children are named in PyTorch. */
interface Naming {
  /** PyTorch names of own tensors, by Kiln property name (default: the same name). */
  rename?: Record<string, string>;
  /** Own tensors stacked into one PyTorch tensor: [torchName, kiln property paths]. */
  stacked?(m: AnyModule): Array<[string, string[]]>;
  /** PyTorch name per Kiln child name; '' lifts the child's contents into this module. */
  children?: Record<string, string>;
  /** Module has a num_batches_tracked counter. */
  counter?: boolean;
}

function namingOf(m: AnyModule): Naming {
  if (m instanceof BatchNorm1d || m instanceof BatchNorm2d) {
    return { rename: { runningMean: 'running_mean', runningVar: 'running_var' }, counter: true };
  }
  if (m instanceof MultiHeadAttention) return { stacked: attentionStacks, children: { outProj: 'out_proj' } };
  if (m instanceof TransformerEncoderLayer || m instanceof TransformerDecoderLayer) {
    return { children: { selfAttn: 'self_attn', crossAttn: 'multihead_attn', feedForward: '' } };
  }
  return {};
}

/** PyTorch packs q, k and v into in_proj_* when all three have dModel inputs, else keeps q/k/v_proj_weight. */
function attentionStacks(m: AnyModule): Array<[string, string[]]> {
  const a = m as MultiHeadAttention;
  const out: Array<[string, string[]]> = [];
  if (a.kDim === a.dModel && a.vDim === a.dModel) out.push(['in_proj_weight', ['qProj.weight', 'kProj.weight', 'vProj.weight']]);
  else out.push(['q_proj_weight', ['qProj.weight']], ['k_proj_weight', ['kProj.weight']], ['v_proj_weight', ['vProj.weight']]);
  if (a.bias) out.push(['in_proj_bias', ['qProj.bias', 'kProj.bias', 'vProj.bias']]);
  return out;
}

const join = (prefix: string, name: string) => (prefix === '' ? name : name === '' ? prefix : `${prefix}.${name}`);

/** The plan for `module`: its PyTorch state dict's entries, in Kiln's state-dict order. */
export function torchPlan(module: AnyModule): TorchEntry[] {
  // Kiln's own names, so tied tensors map under the name Kiln's stateDict gives them (once).
  const state = module.stateDict();
  const kilnName = new Map<Tensor, string>();
  for (const [name, t] of Object.entries(state)) kilnName.set(t, name);
  const planned = new Set<Tensor>();
  const seenModules = new Set<AnyModule>();
  const out: TorchEntry[] = [];

  const visit = (m: AnyModule, kilnPrefix: string, torchPrefix: string): void => {
    if (seenModules.has(m)) return;
    seenModules.add(m);
    const naming = namingOf(m);
    const claimed = new Set<string>();
    for (const [torch, paths] of naming.stacked?.(m) ?? []) {
      const names = paths.map((p) => join(kilnPrefix, p));
      paths.forEach((p) => claimed.add(p.split('.')[0]));
      for (const n of names) planned.add(state[n]);
      out.push({ torch: join(torchPrefix, torch), kiln: names });
    }
    for (const [key, value] of Object.entries(m)) {
      if (!(value instanceof Tensor) || planned.has(value)) continue;
      const name = kilnName.get(value);
      if (name !== join(kilnPrefix, key)) continue; // not registered here (a plain field), or a tie named elsewhere first
      planned.add(value);
      out.push({ torch: join(torchPrefix, naming.rename?.[key] ?? key), kiln: [name] });
    }
    if (naming.counter) out.push({ torch: join(torchPrefix, 'num_batches_tracked'), kiln: [], counter: m as BatchNorm });
    for (const [child, sub] of m.namedChildren()) {
      if (claimed.has(child)) continue;
      const torchChild = naming.children?.[child] ?? child;
      visit(sub, join(kilnPrefix, child), join(torchPrefix, torchChild));
    }
  };
  visit(module, '', '');
  return out;
}
