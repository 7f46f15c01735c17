/**
 * OnnxModel: an imported ONNX graph as an nn.Module. The graph runs node by node with Kiln's ops
 * on the active backend, eagerly, so dynamic dims (batch, sequence) take whatever size the inputs
 * have. Float initializers are trainable parameters (BatchNormalization's running statistics are
 * buffers), so parameters(), stateDict(), freeze(), the optimizers and fit work on it.
 */

import { Module } from '../nn/module.js';
import { backend, keep, tidy } from '../engine.js';
import { isGradEnabled } from '../autograd.js';
import type { Tensor } from '../tensor.js';
import type { DType } from '../backends/backend.js';
import { forgetConstantValues, markConstants } from './constants.js';
import { OnnxNode, type Inputs, type RunContext } from './node.js';
import { CompiledRun, shapesOf, type Recording } from './replay.js';
import { prepareNode, runNode } from './run-node.js';
import { OPS } from './ops/index.js';
import { FusedNode, fuseGraph } from './fusion/index.js';
import { nchwcApplies, planNchwc, type NchwcPlan } from './layout/index.js';
import type { GraphProto, ModelProto, ValueInfoProto } from './proto.js';
import { kilnDType, onnxTypeName, tensorFromProto, type ExternalReader } from './tensors.js';

/** A graph input or output as the file declares it: dims are numbers, or names for dynamic ones ('batch'). */
export interface OnnxValueInfo {
  name: string;
  /** The Kiln dtype the ONNX element type maps to (float32, int32 or bool). */
  dtype: DType | undefined;
  /** The ONNX element type's name ('float', 'int64'). */
  onnxType: string;
  /** Static dims as numbers, dynamic ones as their name (or '?' when unnamed); undefined when the file gives no shape. */
  shape: Array<number | string> | undefined;
}

/** A declared graph input or output, from its ValueInfoProto. */
export function valueInfo(v: ValueInfoProto): OnnxValueInfo {
  const t = v.type?.tensorType;
  const dims = t?.shape?.dim;
  return {
    name: v.name ?? '',
    dtype: t?.elemType === undefined ? undefined : kilnDType(t.elemType),
    onnxType: onnxTypeName(t?.elemType),
    shape: dims === undefined ? undefined : dims.map((d) => (d.dimValue !== undefined ? Number(d.dimValue) : d.dimParam || '?')),
  };
}

/** Property names a Module already uses: an initializer with such a name is stored under 'onnx:' + name. */
const RESERVED = new Set(['training', 'inputNames', 'outputNames', 'inputs', 'outputs', 'opset', 'producer', 'fusions', 'nchwc']);

export class OnnxModel extends Module<Tensor[], Tensor> {
  /** Names of the graph's inputs (initializers excluded), in order: forward's positional arguments. */
  readonly inputNames: string[];
  /** Names of the graph's outputs, in order. */
  readonly outputNames: string[];
  /** The declared inputs with dtypes and shapes (dynamic dims by name). */
  readonly inputs: OnnxValueInfo[];
  /** The declared outputs. */
  readonly outputs: OnnxValueInfo[];
  /** The default-domain opset the model imports. */
  readonly opset: number;
  /** The program that wrote the file ('pytorch 2.1'). */
  readonly producer: string;
  readonly #nodes: OnnxNode[];
  /** ONNX initializer name -> the property holding it (its stateDict key). */
  readonly #initializers = new Map<string, string>();
  /** How many nodes of #live consume each value, for freeing intermediates as soon as they are spent. */
  #consumers = new Map<string, number>();
  /** Values computed once at load from constants alone (see #foldConstants), by name. */
  readonly #folded = new Map<string, Tensor>();
  /** The nodes left to run on every call: those not folded, with recognised patterns fused (fusion/). */
  #live: OnnxNode[] = [];
  /** #live with activations kept channel-blocked between convolutions (layout/), taken per run where it pays. */
  #nchwc: (NchwcPlan & { consumers: Map<string, number> }) | undefined;
  #nchwcRuns = 0;
  /** Per plan (its nodes), the run compiled from it (replay.ts); null once a replay found a shape that depends on values. */
  readonly #compiled = new Map<readonly OnnxNode[], CompiledRun | null>();
  #replays = 0;
  /** Initializers whose in-place writes the backend counts (#forgetIfWritten), with the handle watched. */
  readonly #watched = new WeakMap<Tensor, number>();
  /** The backend's count of writes to watched tensors at the last run. */
  #writesSeen = -1;

  /** Internal: use `kiln.onnx.load`. Checks every node's op before anything runs. */
  constructor(model: ModelProto, readExternal?: ExternalReader) {
    super();
    const graph: GraphProto = model.graph ?? {};
    const opsets = model.opsetImport ?? [];
    this.opset = Number(opsets.find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx')?.version ?? 1);
    this.producer = [model.producerName, model.producerVersion].filter(Boolean).join(' ');
    const nodes = graph.node ?? [];
    this.#nodes = nodes.map((n, i) => new OnnxNode(n, i, this.opset));
    this.#checkOps(opsets);

    const initializerNames = new Set((graph.initializer ?? []).map((t) => t.name ?? ''));
    this.inputs = (graph.input ?? []).filter((v) => !initializerNames.has(v.name ?? '')).map(valueInfo);
    this.outputs = (graph.output ?? []).map(valueInfo);
    this.inputNames = this.inputs.map((v) => v.name);
    this.outputNames = this.outputs.map((v) => v.name);

    // Running statistics of BatchNormalization are state, not weights to train.
    const statistics = new Set(this.#nodes.filter((n) => n.opType === 'BatchNormalization').flatMap((n) => n.inputs.slice(3, 5)));
    const props = this as unknown as Record<string, Tensor>;
    for (const init of graph.initializer ?? []) {
      const name = init.name ?? '';
      const key = RESERVED.has(name) || name in this ? `onnx:${name}` : name;
      const t = tensorFromProto(init, `onnx.load: initializer '${name}'`, readExternal);
      props[key] = t.dtype === 'float32' && !statistics.has(name) ? this.registerParameter(t) : this.registerBuffer(t);
      this.#initializers.set(name, key);
    }
    this.#foldConstants(statistics);
    this.#live = fuseGraph(this.#live, this.outputNames);
    this.#consumers = consumerCounts(this.#live);
    const blocked = planNchwc(this.#live, this.outputNames, (name) => {
      const key = this.#initializers.get(name);
      return (key === undefined ? this.#folded.get(name) : (this as unknown as Record<string, Tensor>)[key])?.shape;
    });
    this.#nchwc = blocked === undefined ? undefined : { ...blocked, consumers: consumerCounts(blocked.nodes) };
    // An imported model starts in evaluation mode (BatchNormalization uses its running statistics,
    // Dropout is off), as the exporter traced it; fit switches to training mode itself.
    this.eval();
  }

  /**
   * Runs once, at load, every node whose inputs are all constants: Constant nodes, non-float
   * initializers (shapes, indices) and what is computed from them alone — e.g. exporters'
   * Shape-free ConstantOfShape weights or index arithmetic. Trainable parameters are never folded
   * (their values change when fine-tuning), nor random ops.
   */
  #foldConstants(statistics: Set<string>): void {
    const props = this as unknown as Record<string, Tensor>;
    const constant = new Set<string>();
    for (const [name, key] of this.#initializers) if (props[key].dtype !== 'float32' && !statistics.has(name)) constant.add(name);
    const random = new Set(['Dropout', 'RandomNormal', 'RandomUniform', 'RandomNormalLike', 'RandomUniformLike', 'Bernoulli', 'Multinomial']);
    const values = new Map<string, Tensor>();
    const valueOf = (name: string): Tensor => values.get(name) ?? props[this.#initializers.get(name)!];
    for (const node of this.#nodes) {
      const foldable = !random.has(node.opType) && node.inputs.every((n) => n === '' || constant.has(n));
      if (!foldable) {
        this.#live.push(node);
        continue;
      }
      const results = tidy(() => OPS[node.opType](node.inputs.map((n) => (n === '' ? undefined : valueOf(n))), node, { training: false }));
      node.outputs.forEach((name, i) => {
        if (name === '' || results[i] === undefined) return;
        constant.add(name);
        values.set(name, results[i]);
      });
    }
    // Keep only what a live node or a graph output reads; the rest were steps on the way.
    const needed = new Set([...this.#live.flatMap((n) => n.inputs), ...this.outputNames]);
    const keptTensors = new Set<Tensor>();
    for (const [name, t] of values) {
      if (needed.has(name)) {
        this.#folded.set(name, keep(t));
        markConstants([t]);
        keptTensors.add(t);
      }
    }
    const parameters = new Set<Tensor>(Object.values(this.stateDict()));
    for (const t of values.values()) if (!keptTensors.has(t) && !parameters.has(t)) t.dispose();
  }

  /**
   * The patterns recognised at load and run as one Kiln op each (fusion/): e.g.
   * { pattern: 'Attention', nodes: ['MatMul_3', 'Mul_4', 'Softmax_5', 'MatMul_6'] }.
   */
  get fusions(): Array<{ pattern: string; nodes: string[] }> {
    return this.#live.filter((n): n is FusedNode => n instanceof FusedNode).map((n) => ({ pattern: n.pattern, nodes: n.replaced.map((r) => r.name) }));
  }

  /**
   * The NCHWc layout pass (layout/): the nodes it runs channel-blocked, and how many runs took
   * that plan (those on the native backend with AVX-512, in inference; KILN_ONNX_NCHWC=off turns it off),
   * and how many runs (of either plan) replayed the run compiled from an earlier one (replay.ts).
   */
  get nchwc(): { nodes: string[]; runs: number; replays: number } {
    return { nodes: (this.#nchwc?.blocked ?? []).map((n) => n.name), runs: this.#nchwcRuns, replays: this.#replays };
  }

  /** Frees the parameters, buffers and folded constants. */
  override dispose(): void {
    for (const t of this.#folded.values()) t.dispose();
    this.#folded.clear();
    this.#forgetFusions();
    super.dispose();
  }

  /**
   * Sets training mode, and drops what fused nodes keep derived from the parameters (the
   * BatchNormalization folded into each Conv): weights change between train() and eval()
   * (fit calls both), so the next inference run folds them again.
   */
  override train(mode = true): this {
    this.#forgetFusions();
    return super.train(mode);
  }

  /** Loads parameters and buffers (see Module.loadStateDict); fused nodes fold them again. */
  override loadStateDict(...args: Parameters<Module['loadStateDict']>): ReturnType<Module['loadStateDict']> {
    this.#forgetFusions();
    return super.loadStateDict(...args);
  }

  #forgetFusions(): void {
    for (const [plan, compiled] of this.#compiled) if (compiled !== null) this.#compiled.delete(plan);
    for (const node of this.#live) if (node instanceof FusedNode) node.forget();
    for (const node of this.#nchwc?.blocked ?? []) node.forget();
    forgetConstantValues(this.#constants());
  }

  /** The initializers and folded constants: what every run reads and none writes. */
  #constants(): Tensor[] {
    const props = this as unknown as Record<string, Tensor>;
    return [...[...this.#initializers.values()].map((key) => props[key]).filter((t) => t !== undefined), ...this.#folded.values()];
  }

  /**
   * The nodes this run takes: the blocked plan where it applies (layout/: native AVX-512,
   * inference), else the fused graph; first, what fused nodes keep is dropped if a weight was
   * written since the last run (#forgetIfWritten).
   */
  #plan(feeds: Tensor[], gradients: boolean): { nodes: OnnxNode[]; consumers: Map<string, number> } {
    this.#forgetIfWritten();
    const plain = { nodes: this.#live, consumers: this.#consumers };
    if (this.#nchwc === undefined) return plain;
    if (nchwcApplies(this.training, gradients, () => [...this.parameters(), ...feeds])) {
      this.#nchwcRuns++;
      return this.#nchwc;
    }
    return plain;
  }

  /**
   * What fused nodes keep (the folded BatchNormalization, packed filters) is computed from the
   * initializers' values; a value written in place since (an optimizer step outside fit, assign,
   * a device update) must be folded again, as PyTorch would run the new weights. The backend
   * counts in-place writes of the tensors watched here (watchWrites): one call per run learns
   * whether any was written. A new tensor under an initializer's name (loadStateDict, a move to
   * another device) is watched when first seen; fused nodes key their folds by tensor identity.
   */
  #forgetIfWritten(): void {
    const props = this as unknown as Record<string, Tensor>;
    let counter: Tensor | undefined;
    let moved = false;
    for (const key of this.#initializers.values()) {
      const t = props[key];
      if (t === undefined || t.isDisposed) continue;
      counter ??= t;
      const watched = this.#watched.get(t);
      if (watched !== t.handle) {
        // A tensor moved in place to another device has a new handle: watch it, fold again.
        moved ||= watched !== undefined;
        t.backend.impl.watchWrites([t.handle]);
        this.#watched.set(t, t.handle);
        // Watched, so its small values may be kept between runs (constants.ts; not the inputs).
        markConstants([t]);
      }
    }
    if (counter === undefined) return;
    const writes = counter.backend.impl.watchWrites([]);
    if (moved || (writes !== this.#writesSeen && this.#writesSeen !== -1)) this.#forgetFusions();
    this.#writesSeen = writes;
  }

  /** Every node whose op Kiln lacks, listed together, before anything runs. */
  #checkOps(opsets: Array<{ domain?: string; version?: number }>): void {
    const problems: string[] = [];
    for (const node of this.#nodes) {
      if (!Object.hasOwn(OPS, node.opType)) problems.push(`${node.opType} (node '${node.name}')`);
    }
    const foreign = opsets.filter((o) => !['', 'ai.onnx'].includes(o.domain ?? '')).map((o) => `${o.domain} v${o.version}`);
    if (problems.length > 0) {
      const unique = [...new Set(problems.map((p) => p.split(' ')[0]))];
      throw new Error(
        `onnx.load: the model uses ${unique.length} op type(s) Kiln does not import (opset ${this.opset}${foreign.length > 0 ? `; other domains: ${foreign.join(', ')}` : ''}): ${problems.join(', ')}. ` +
          'Supported ops are listed by kiln.onnx.supportedOps() and in docs/onnx.md.',
      );
    }
  }

  /**
   * Runs the graph on the positional inputs (in inputNames order) and returns the first output
   * (the only one of most models; see run() for all of them). Shapes are the model's, e.g. an
   * image classifier: [batch, 3, 224, 224] -> [batch, 1000].
   */
  forward(...inputs: Tensor[]): Tensor {
    if (inputs.length !== this.inputNames.length) {
      throw new Error(`OnnxModel.forward: the model takes ${this.inputNames.length} input(s) (${this.inputNames.join(', ')}), got ${inputs.length}`);
    }
    const out = this.run(Object.fromEntries(this.inputNames.map((n, i) => [n, inputs[i]])));
    return out[this.outputNames[0]];
  }

  /**
   * Runs the graph on named inputs and returns every graph output by name. Each input is checked
   * against the declared dtype and static dims (dynamic dims take any size). Intermediate tensors
   * are freed as soon as no later node needs them. The plan is compiled from its first run for
   * given input dims and replayed while they and the weights stay (replay.ts).
   */
  run(feeds: Record<string, Tensor>): Record<string, Tensor> {
    // Inputs converted to the declared dtype are this run's to free (unless returned).
    const converted: Tensor[] = [];
    const inputs = this.inputs.map((info) => {
      const given = feeds[info.name];
      const t = this.#checkInput(info, given);
      if (t !== given) converted.push(t);
      return t;
    });
    const unknown = Object.keys(feeds).filter((k) => !this.inputNames.includes(k));
    if (unknown.length > 0) throw new Error(`OnnxModel.run: unknown input(s) ${unknown.join(', ')} (the model's inputs: ${this.inputNames.join(', ')})`);

    const context = { training: this.training };
    const gradients = isGradEnabled();
    const plan = this.#plan(Object.values(feeds), gradients);
    // A compiled run (one per plan) serves one mode and gradient setting (fused nodes keep weights that pass no gradient).
    const key = [this.training, gradients];
    const [constants, be] = [this.#constants(), backend()];
    let result: Record<string, Tensor> | undefined;
    const compiled = this.#compiled.get(plan.nodes);
    if (compiled?.matches(key, inputs, constants, be)) {
      result = compiled.replay(inputs, context);
      if (result === undefined) this.#compiled.set(plan.nodes, null); // a shape read from values changed: interpret from now on
      else this.#replays++;
    }
    if (result === undefined) {
      const recording = this.#compiled.get(plan.nodes) === null ? undefined : { key, backend: be, inputNames: this.inputNames, outputNames: this.outputNames, constants, start: new Map(), nodes: [] };
      result = this.#interpret(plan, inputs, context, recording);
      if (recording !== undefined) this.#compiled.set(plan.nodes, new CompiledRun(recording));
    }
    const returned = new Set(Object.values(result));
    for (const t of converted) if (!returned.has(t)) t.dispose();
    return result;
  }

  /**
   * Runs `plan` node by node on `inputs` (in inputNames order), values looked up by name; with a
   * `recording` (for CompiledRun), the inputs and constants by name and what each node read,
   * returned and prepared are written into it.
   */
  #interpret(plan: { nodes: OnnxNode[]; consumers: Map<string, number> }, inputs: Tensor[], context: RunContext, recording?: Pick<Recording, 'start' | 'nodes' | 'constants'>): Record<string, Tensor> {
    const values = new Map<string, Tensor>();
    for (const [name, key] of this.#initializers) values.set(name, (this as unknown as Record<string, Tensor>)[key]);
    for (const [name, t] of this.#folded) values.set(name, t);
    this.inputNames.forEach((name, i) => values.set(name, inputs[i]));
    if (recording !== undefined) for (const [name, t] of values) recording.start.set(name, t);
    const constantSet = new Set(recording?.constants);

    const keepAlive = new Set<Tensor>([...values.values()]);
    const remaining = new Map<Tensor, number>();
    const outputs = new Set(this.outputNames);
    const created: Tensor[] = [];
    try {
      for (const node of plan.nodes) {
        const args: Inputs = node.inputs.map((name) => {
          if (name === '') return undefined;
          const t = values.get(name);
          if (t === undefined) throw new Error(`${node.where}: input '${name}' is not produced by any earlier node, initializer or graph input`);
          return t;
        });
        // Recording: the node's prepared form, for constants staying constant, runs now too.
        const prepared = recording === undefined ? undefined : prepareNode(node, args, { ...context, constant: (t) => constantSet.has(t) });
        const results = prepared !== undefined ? runNode(node, args, context, () => prepared(args)) : runNode(node, args, context);
        recording?.nodes.push({ node, args, results, prepared, made: prepared === undefined ? shapesOf(results) : [] });
        node.outputs.forEach((name, i) => {
          if (name === '' || results[i] === undefined) return;
          const t = results[i];
          values.set(name, t);
          if (!keepAlive.has(t)) {
            if (!remaining.has(t)) created.push(t);
            remaining.set(t, (remaining.get(t) ?? 0) + (outputs.has(name) ? Infinity : plan.consumers.get(name) ?? 0));
          }
        });
        // Extra results (optional outputs not asked for) and spent inputs are freed now.
        results.forEach((t, i) => {
          if ((node.outputs[i] ?? '') === '' && !keepAlive.has(t) && !remaining.has(t) && !args.includes(t)) t.dispose();
        });
        for (const t of args) {
          if (t === undefined || !remaining.has(t)) continue;
          const left = remaining.get(t)! - 1;
          remaining.set(t, left);
          if (left === 0) t.dispose();
        }
      }
    } catch (e) {
      for (const t of created) t.dispose();
      throw e;
    }
    const result: Record<string, Tensor> = {};
    for (const name of this.outputNames) {
      const t = values.get(name);
      if (t === undefined) throw new Error(`OnnxModel.run: the graph output '${name}' was never produced`);
      result[name] = t;
    }
    return result;
  }

  #checkInput(info: OnnxValueInfo, t: Tensor | undefined): Tensor {
    const expected = `${info.onnxType} [${info.shape?.join(', ') ?? '?'}]`;
    if (t === undefined) throw new Error(`OnnxModel.run: missing input '${info.name}' (${expected}); the model's inputs: ${this.inputNames.join(', ')}`);
    if (info.shape !== undefined) {
      const fits = info.shape.length === t.rank && info.shape.every((d, i) => typeof d !== 'number' || d === t.shape[i] || d === 0);
      if (!fits) throw new Error(`OnnxModel.run: input '${info.name}' must be ${expected}, got ${t.dtype} [${t.shape.join(', ')}]`);
    }
    if (info.dtype !== undefined && info.dtype !== t.dtype) {
      // Integer ids given as floats (or the reverse) are converted, as the ONNX type says.
      if (info.dtype === 'bool' || t.dtype === 'bool') throw new Error(`OnnxModel.run: input '${info.name}' must be ${expected}, got ${t.dtype}`);
      return t.cast(info.dtype);
    }
    return t;
  }
}

/** How many of `nodes` read each value (a node reading it twice counts twice, as run() spends it). */
function consumerCounts(nodes: OnnxNode[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const node of nodes) for (const name of node.inputs) if (name !== '') counts.set(name, (counts.get(name) ?? 0) + 1);
  return counts;
}
