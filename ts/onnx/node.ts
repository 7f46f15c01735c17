/**
 * What an op implementation sees of one ONNX node: its attributes (typed getters with the
 * defaults of the ONNX spec), the opset the model imports, training mode, and `fail`, which throws
 * an Error naming the op, the node and the opset.
 */

import type { Tensor } from '../tensor.js';
import { hostValues } from './constants.js';
import type { AttributeProto, NodeProto } from './proto.js';
import { tensorFromProto } from './tensors.js';

export class OnnxNode {
  readonly opType: string;
  readonly name: string;
  readonly inputs: string[];
  readonly outputs: string[];
  readonly #attributes = new Map<string, AttributeProto>();

  constructor(
    proto: NodeProto,
    index: number,
    /** The default-domain opset the model imports. */
    readonly opset: number,
  ) {
    this.opType = proto.opType ?? '';
    this.name = proto.name || `#${index}`;
    this.inputs = proto.input ?? [];
    this.outputs = proto.output ?? [];
    for (const a of proto.attribute ?? []) this.#attributes.set(a.name ?? '', a);
  }

  /** 'Conv node "conv1" (opset 13)', the prefix of every message about this node. */
  get where(): string {
    return `onnx: ${this.opType} node '${this.name}' (opset ${this.opset})`;
  }

  /** Throws an Error about this node. */
  fail(message: string): never {
    throw new Error(`${this.where}: ${message}`);
  }

  has(name: string): boolean {
    return this.#attributes.has(name);
  }

  int(name: string, fallback: number): number;
  int(name: string): number | undefined;
  int(name: string, fallback?: number): number | undefined {
    const a = this.#attributes.get(name);
    return a?.i !== undefined ? Number(a.i) : fallback;
  }

  float(name: string, fallback: number): number {
    const a = this.#attributes.get(name);
    return a?.f !== undefined ? a.f : fallback;
  }

  ints(name: string): number[] | undefined {
    const a = this.#attributes.get(name);
    return a?.ints !== undefined ? a.ints.map(Number) : undefined;
  }

  floats(name: string): number[] | undefined {
    return this.#attributes.get(name)?.floats;
  }

  string(name: string, fallback: string): string {
    const s = this.#attributes.get(name)?.s;
    return s !== undefined ? new TextDecoder().decode(s) : fallback;
  }

  strings(name: string): string[] | undefined {
    return this.#attributes.get(name)?.strings?.map((s) => new TextDecoder().decode(s));
  }

  /** A TENSOR attribute as a Kiln tensor (Constant's value, ConstantOfShape's fill). */
  tensor(name: string): Tensor | undefined {
    const t = this.#attributes.get(name)?.t;
    return t === undefined ? undefined : tensorFromProto(t, `${this.where}, attribute '${name}'`);
  }

  /** Names of the attributes present, for Constant's value_* variants. */
  attributeNames(): string[] {
    return [...this.#attributes.keys()];
  }
}

/** The inputs of one node: Kiln tensors, or undefined for an omitted optional input (''). */
export type Inputs = Array<Tensor | undefined>;

/** Runs one node. Returns its outputs in order (fewer than declared when trailing optional outputs are not produced). */
export type OpImpl = (inputs: Inputs, node: OnnxNode, context: RunContext) => Tensor[];

/** Resolves one op for inputs like these (see Prepared), or undefined when it has no prepared form for them. */
export type PrepareImpl = (inputs: Inputs, node: OnnxNode, context: RunContext) => Prepared | undefined;

/** State an op may need beyond its node: training mode (BatchNormalization, Dropout). */
export interface RunContext {
  training: boolean;
  /**
   * While a compiled run is recorded (../replay.ts): whether a tensor is one of the model's
   * constants, the same on every run it replays. A prepared call may keep what it derives from
   * constants (a stacked weight, a Reshape's target, a scale) and must read every other tensor
   * from its arguments. Absent: the prepared call is made once, on the args it was prepared for.
   */
  constant?: (t: Tensor) => boolean;
}

/**
 * A node's computation resolved for inputs of given dims, dtypes and backend and given constants
 * (see RunContext.constant): a function of the inputs that resolves and checks nothing again and
 * whose results carry their shape (no boundary call to ask it). A compiled run (../replay.ts)
 * calls it on every run while the model's input dims and constants stay those it was recorded with.
 */
export type Prepared = (args: Inputs) => Tensor[];

/** Whether every given tensor of `tensors` stays the same between the runs a prepared call serves (RunContext.constant). */
export function constantsIn(context: RunContext, tensors: Inputs): boolean {
  const constant = context.constant;
  return constant === undefined || tensors.every((t) => t === undefined || constant(t));
}

/** The required input `i`, or a clear error naming it. */
export function input(inputs: Inputs, i: number, node: OnnxNode): Tensor {
  const t = inputs[i];
  if (t === undefined) node.fail(`input ${i} is required but missing`);
  return t;
}

/** A small integer tensor's values (shapes, axes, starts), read back to the host (once for a model's constant: constants.ts). */
export function intValues(t: Tensor): number[] {
  return [...hostValues(t)];
}

/** Normalizes a possibly negative axis against `rank`, or fails naming the node. */
export function axisOf(axis: number, rank: number, node: OnnxNode): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!(a >= 0 && a < rank)) node.fail(`axis ${axis} is out of range for a rank-${rank} tensor`);
  return a;
}
