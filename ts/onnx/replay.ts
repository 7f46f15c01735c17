/**
 * A compiled run of an imported model's plan (the fused graph, or the blocked plan of layout/),
 * for one set of input dims.
 *
 * OnnxModel.run interprets its plan node by node: names looked up in a map, each node's fast path
 * resolved again (checks, geometry, constants read), every result asked for its shape and dtype
 * across the boundary, a tidy scope per node and a count per tensor to free it when spent. At
 * batch 1 that was 0.7-0.9 ms of serial JavaScript per SqueezeNet or Transformer inference
 * (docs/onnx-speed-log.md). A CompiledRun is recorded during one ordinary run and then replayed
 * while the graph inputs bring the same dims, dtypes and backend, the mode (training, gradients)
 * is the same and the model's constants are the same tensor objects: values live in numbered
 * slots, each node calls the function it was prepared to in the recorded run (Prepared in
 * node.ts: a fused node's fast path, a blocked node's, a view op's; no checks, results wrapped
 * with their known shape, constants read once), and each intermediate is freed right after its
 * last reader, as the recorded run's tensors showed.
 *
 * Every shape in the plan follows from the input dims through the prepared nodes; a node that
 * has no prepared form (a plain op such as Softmax) runs as OnnxModel.run runs it, and its
 * outputs' shapes and dtypes are compared with the recorded ones: when they differ (a shape read
 * from values, e.g. NonZero's), the replay frees what it made and reports `undefined`, and the
 * model runs its plan as before.
 */

import type { LoadedBackend } from '../backends/backend.js';
import type { Tensor } from '../tensor.js';
import type { Inputs, OnnxNode, Prepared, RunContext } from './node.js';
import { runNode } from './run-node.js';

/** What one node did in the recorded run. */
export interface RecordedNode {
  node: OnnxNode;
  args: Inputs;
  results: Tensor[];
  /** Its prepared form for these args (prepareNode), if it has one. */
  prepared: Prepared | undefined;
  /** Without one: each result's shape and dtype, read as it was made (it may be freed by the end). */
  made: Array<{ shape: readonly number[]; dtype: string }>;
}

/** A recorded node's results' shapes and dtypes, for one run without a prepared form. */
export function shapesOf(results: Tensor[]): RecordedNode['made'] {
  return results.map((t) => ({ shape: [...t.shape], dtype: t.dtype }));
}

/** The recorded run: the graph's inputs and constants by name (as it started) and each node in order. */
export interface Recording {
  /** What the run was recorded for besides its plan and inputs: training mode, whether gradients were on. */
  key: readonly unknown[];
  backend: LoadedBackend;
  inputNames: string[];
  outputNames: string[];
  /** Graph inputs and constants (initializers, folded values) by name. */
  start: Map<string, Tensor>;
  /** The constants in the order `replay` is given them. */
  constants: Tensor[];
  nodes: RecordedNode[];
}

interface Step {
  node: OnnxNode;
  /** The slot of each input, -1 for an omitted one. */
  inputs: number[];
  /** The slot of each output, -1 for an unnamed one (a result dropped at once). */
  outputs: number[];
  prepared: Prepared | undefined;
  /** A node run unprepared: each output's shape and dtype in the recorded run. */
  expected: Array<{ shape: readonly number[]; dtype: string }>;
  /** Slots whose tensor this step reads (or makes) last: freed after it. */
  frees: number[];
}

export class CompiledRun {
  readonly #key: readonly unknown[];
  readonly #backend: LoadedBackend;
  /** The graph inputs' dims and dtypes in the recorded run. */
  readonly #inputs: Array<{ shape: readonly number[]; dtype: string }>;
  readonly #constants: Tensor[];
  readonly #constantSet: Set<Tensor>;
  /** Slots filled before the first step: the constants (inputs are set per run). */
  readonly #start: Array<Tensor | undefined>;
  readonly #inputSlots: number[];
  readonly #outputSlots: number[];
  readonly #outputNames: string[];
  readonly #steps: Step[];

  constructor(recording: Recording) {
    const { nodes, start, inputNames, outputNames } = recording;
    this.#key = recording.key;
    this.#backend = recording.backend;
    this.#constants = recording.constants;
    this.#constantSet = new Set(recording.constants);
    this.#outputNames = outputNames;
    const slots = new Map<string, number>();
    const slotOf = (name: string): number => {
      if (name === '') return -1;
      let s = slots.get(name);
      if (s === undefined) slots.set(name, (s = slots.size));
      return s;
    };
    this.#inputSlots = inputNames.map(slotOf);
    this.#inputs = inputNames.map((name) => ({ shape: [...start.get(name)!.shape], dtype: start.get(name)!.dtype }));
    const startValues = new Set(start.values());
    // Each tensor of the recorded run: its last reader, or the node that made it when none reads it.
    const outputs = new Set(outputNames);
    const lastUse = new Map<Tensor, { step: number; slot: number }>();
    const kept = new Set<Tensor>(startValues);
    this.#steps = nodes.map(({ node, args, results, prepared, made }, i) => {
      const inputs = node.inputs.map(slotOf);
      args.forEach((t, j) => t !== undefined && lastUse.set(t, { step: i, slot: inputs[j] }));
      const outs = node.outputs.map(slotOf);
      results.forEach((t, j) => {
        if ((outs[j] ?? -1) < 0) return;
        if (outputs.has(node.outputs[j])) kept.add(t);
        if (!lastUse.has(t)) lastUse.set(t, { step: i, slot: outs[j] });
      });
      return { node, inputs, outputs: outs, prepared, expected: made, frees: [] as number[] };
    });
    for (const [t, { step, slot }] of lastUse) if (!kept.has(t)) this.#steps[step].frees.push(slot);
    // A graph output no node makes (an initializer, a folded constant) has a slot of its own too.
    this.#outputSlots = outputNames.map(slotOf);
    this.#start = Array.from({ length: slots.size }, () => undefined);
    for (const [name, t] of start) if (slots.has(name) && !inputNames.includes(name)) this.#start[slots.get(name)!] = t;
  }

  /**
   * Whether a run on `feeds` (the graph inputs in order) with these `constants` on `backend` is
   * the recorded one's: same `key` (Recording.key), dims, dtypes and backend, the same constant
   * tensors, none freed.
   */
  matches(key: readonly unknown[], feeds: Tensor[], constants: Tensor[], backend: LoadedBackend): boolean {
    if (key.length !== this.#key.length || key.some((k, i) => k !== this.#key[i])) return false;
    if (backend !== this.#backend || constants.length !== this.#constants.length || feeds.length !== this.#inputs.length) return false;
    for (let i = 0; i < constants.length; i++) if (constants[i] !== this.#constants[i] || constants[i].isDisposed) return false;
    for (let i = 0; i < feeds.length; i++) {
      const [t, recorded] = [feeds[i], this.#inputs[i]];
      if (t.backend !== backend || t.dtype !== recorded.dtype || !sameShape(t.shape, recorded.shape)) return false;
    }
    return true;
  }

  /**
   * The graph outputs by name for `feeds` (check `matches` first), or undefined when an
   * unprepared node's outputs differ in shape from the recorded run's (everything this replay
   * made is freed then).
   */
  replay(feeds: Tensor[], context: RunContext): Record<string, Tensor> | undefined {
    const slots = this.#start.slice();
    this.#inputSlots.forEach((s, i) => (slots[s] = feeds[i]));
    const made: Tensor[] = [];
    try {
      for (const step of this.#steps) {
        const args: Inputs = step.inputs.map((s) => (s < 0 ? undefined : slots[s]));
        const prepared = step.prepared;
        const results = prepared !== undefined ? runNode(step.node, args, context, () => prepared(args)) : runNode(step.node, args, context);
        const ours = results.filter((t) => !args.includes(t) && !this.#constantSet.has(t));
        made.push(...ours);
        // A prepared node's results have the recorded shapes (they follow from its inputs'); another's are checked.
        const same = prepared !== undefined || (results.length === step.expected.length && results.every((t, j) => t.dtype === step.expected[j].dtype && sameShape(t.shape, step.expected[j].shape)));
        if (!same) {
          for (const m of made) m.dispose();
          return undefined;
        }
        results.forEach((t, j) => {
          if ((step.outputs[j] ?? -1) >= 0) slots[step.outputs[j]] = t;
          else if (ours.includes(t)) t.dispose();
        });
        for (const s of step.frees) slots[s]!.dispose();
      }
    } catch (e) {
      for (const m of made) m.dispose();
      throw e;
    }
    const result: Record<string, Tensor> = {};
    this.#outputNames.forEach((name, i) => (result[name] = slots[this.#outputSlots[i]]!));
    return result;
  }
}

const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);
