/**
 * What the fusion passes know about an imported graph at load: which node produces each value,
 * which nodes read it, and which values are graph outputs. A value may be folded into a fused op
 * only when the pattern is its sole reader and no one outside sees it.
 */

import type { OnnxNode } from '../node.js';

export class GraphIndex {
  readonly #producer = new Map<string, OnnxNode>();
  readonly #readers = new Map<string, OnnxNode[]>();
  readonly #outputs: Set<string>;
  readonly #position = new Map<OnnxNode, number>();

  constructor(nodes: OnnxNode[], graphOutputs: string[]) {
    nodes.forEach((node, i) => this.#position.set(node, i));
    for (const node of nodes) {
      for (const name of node.outputs) if (name !== '') this.#producer.set(name, node);
      for (const name of new Set(node.inputs)) if (name !== '') this.#readers.set(name, [...(this.#readers.get(name) ?? []), node]);
    }
    this.#outputs = new Set(graphOutputs);
  }

  /** Whether `value` is read by exactly one node, once, and is not a graph output. */
  #private(value: string): boolean {
    const readers = this.#readers.get(value) ?? [];
    return readers.length === 1 && readers[0].inputs.filter((n) => n === value).length === 1 && !this.#outputs.has(value);
  }

  /**
   * The node producing `value` if its op is `opType`, it has no other output, and `value` is
   * private (read once, by the pattern): an intermediate the fused op may swallow.
   */
  privateProducer(value: string, opType: string): OnnxNode | undefined {
    const node = this.#producer.get(value);
    if (node === undefined || node.opType !== opType || !this.#private(value)) return undefined;
    return node.outputs.filter((o) => o !== '').length === 1 ? node : undefined;
  }

  /**
   * The node producing `value` if its op is `opType` and it has one output, whoever else reads
   * it: for patterns that read an intermediate twice (LayerNorm's centred input), which check
   * `confined` once matched.
   */
  producer(value: string, opType: string): OnnxNode | undefined {
    const node = this.#producer.get(value);
    return node !== undefined && node.opType === opType && node.outputs.filter((o) => o !== '').length === 1 ? node : undefined;
  }

  /** `nodes` in graph order (the order a fused node's replaced nodes run in when it declines). */
  inOrder(nodes: Iterable<OnnxNode>): OnnxNode[] {
    return [...nodes].sort((a, b) => this.#position.get(a)! - this.#position.get(b)!);
  }

  /** Whether every value `nodes` produce, except `output`, is read by `nodes` alone and is not a graph output. */
  confined(nodes: Set<OnnxNode>, output: string): boolean {
    for (const node of nodes) {
      for (const value of node.outputs) {
        if (value === '' || value === output) continue;
        if (this.#outputs.has(value) || (this.#readers.get(value) ?? []).some((reader) => !nodes.has(reader))) return false;
      }
    }
    return true;
  }

  /** Every node reading `value`, in graph order. */
  readers(value: string): OnnxNode[] {
    return this.#readers.get(value) ?? [];
  }

  /** Whether `value` exists before `node` runs: no node of the graph makes it (an input, an initializer, a folded constant), or one earlier does. */
  availableBefore(value: string, node: OnnxNode): boolean {
    const producer = this.#producer.get(value);
    return producer === undefined || this.#position.get(producer)! < this.#position.get(node)!;
  }

  /** The one node reading `value` if its op is `opType` and `value` is private. */
  soleReader(value: string, opType: string): OnnxNode | undefined {
    if (!this.#private(value)) return undefined;
    const reader = this.#readers.get(value)![0];
    return reader.opType === opType ? reader : undefined;
  }
}

/** The operand of a binary `node` other than `name` (undefined if `name` is not one of them). */
export function otherOperand(node: OnnxNode, name: string): string | undefined {
  return node.inputs[0] === name ? node.inputs[1] : node.inputs[1] === name ? node.inputs[0] : undefined;
}
