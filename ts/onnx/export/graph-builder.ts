/**
 * Builds an ONNX graph (plain ModelProto objects for proto.ts's encoder): value names, nodes with
 * typed attributes, and initializers (parameters under their module names, captured constants).
 */

import type { AttributeProto, NodeProto, TensorProto, ValueInfoProto } from '../proto.js';
import { ONNX_TYPE } from '../tensors.js';

export type AttributeValue = number | number[] | string | { float: number } | { floats: number[] };

/** AttributeProto.AttributeType values. */
const ATTRIBUTE = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7 } as const;

function attribute(name: string, value: AttributeValue): AttributeProto {
  if (typeof value === 'string') return { name, type: ATTRIBUTE.STRING, s: new TextEncoder().encode(value) };
  if (typeof value === 'number') return { name, type: ATTRIBUTE.INT, i: value };
  if (Array.isArray(value)) return { name, type: ATTRIBUTE.INTS, ints: value };
  if ('float' in value) return { name, type: ATTRIBUTE.FLOAT, f: value.float };
  return { name, type: ATTRIBUTE.FLOATS, floats: value.floats };
}

export class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  #count = 0;

  /** A fresh value name with a readable stem ('MatMul_12'). */
  fresh(stem: string): string {
    return `${stem}_${this.#count++}`;
  }

  /** Adds a node; returns its output names (`outputs` of them, default one). */
  node(opType: string, inputs: string[], attributes: Record<string, AttributeValue> = {}, outputs = 1): string[] {
    const names = Array.from({ length: outputs }, () => this.fresh(opType));
    this.nodes.push({
      opType,
      name: `/${names[0]}`,
      input: inputs,
      output: names,
      attribute: Object.entries(attributes).map(([n, v]) => attribute(n, v)),
    });
    return names;
  }

  /** One-output node shorthand. */
  op(opType: string, inputs: string[], attributes: Record<string, AttributeValue> = {}): string {
    return this.node(opType, inputs, attributes)[0];
  }

  /** Adds an initializer; returns its name. */
  initializer(proto: TensorProto): string {
    this.initializers.push(proto);
    return proto.name!;
  }

  /** An int64 1-D constant (shapes, axes, pads). */
  ints(values: number[]): string {
    const name = this.fresh('const');
    const raw = new Uint8Array(new BigInt64Array(values.map((v) => BigInt(v))).buffer);
    return this.initializer({ name, dims: [values.length], dataType: ONNX_TYPE.INT64, rawData: raw });
  }

  /** A float32 constant of any shape. */
  floats(values: ArrayLike<number>, dims: number[] = [values.length]): string {
    const name = this.fresh('const');
    return this.initializer({ name, dims, dataType: ONNX_TYPE.FLOAT, rawData: new Uint8Array(Float32Array.from(values).buffer) });
  }
}

/** A float32 tensor-typed graph input or output with a static shape. */
export function valueInfoOf(name: string, dtype: string, shape: readonly number[]): ValueInfoProto {
  const elemType = dtype === 'int32' ? ONNX_TYPE.INT32 : dtype === 'bool' ? ONNX_TYPE.BOOL : ONNX_TYPE.FLOAT;
  return { name, type: { tensorType: { elemType, shape: { dim: shape.map((d) => ({ dimValue: d })) } } } };
}
