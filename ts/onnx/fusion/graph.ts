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

  constructor(nodes: OnnxNode[], graphOutputs: string[]) {
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

  /** The one node reading `value` if its op is `opType` and `value` is private. */
  soleReader(value: string, opType: string): OnnxNode | undefined {
    if (!this.#private(value)) return undefined;
    const reader = this.#readers.get(value)![0];
    return reader.opType === opType ? reader : undefined;
  }
}
