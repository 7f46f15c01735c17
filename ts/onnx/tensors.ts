/**
 * ONNX TensorProto <-> Kiln tensors. Kiln computes in float32, int32 and bool, so ONNX's types
 * are mapped onto those (the policy, also in docs/onnx.md):
 * - float, double, float16, bfloat16 -> float32 (double loses precision, halves widen exactly);
 * - int64, int32, int16, int8, uint8, uint16, uint32, uint64 -> int32, values outside int32's range
 *   clamped (ONNX uses INT64_MAX as "to the end" in Slice; every such sentinel still means "the end");
 * - bool -> bool.
 */

import type { DType } from '../backends/backend.js';
import { tensor } from '../ops/creation.js';
import type { Tensor } from '../tensor.js';
import type { TensorProto } from './proto.js';

/** onnx.TensorProto.DataType values. */
export const ONNX_TYPE = {
  FLOAT: 1, UINT8: 2, INT8: 3, UINT16: 4, INT16: 5, INT32: 6, INT64: 7, STRING: 8, BOOL: 9,
  FLOAT16: 10, DOUBLE: 11, UINT32: 12, UINT64: 13, BFLOAT16: 16,
} as const;

const TYPE_NAMES: Record<number, string> = {
  ...Object.fromEntries(Object.entries(ONNX_TYPE).map(([k, v]) => [v, k.toLowerCase()])),
  14: 'complex64', 15: 'complex128', 17: 'float8e4m3fn', 18: 'float8e4m3fnuz', 19: 'float8e5m2', 20: 'float8e5m2fnuz', 21: 'uint4', 22: 'int4', 23: 'float4e2m1', 24: 'float8e8m0', 25: 'uint2', 26: 'int2',
};

/** The ONNX type's name ('int64'), for messages. */
export function onnxTypeName(type: number | undefined): string {
  return TYPE_NAMES[type ?? 0] ?? `type ${type}`;
}

/** The Kiln dtype an ONNX element type maps to, or undefined when Kiln has none (string, complex). */
export function kilnDType(type: number): DType | undefined {
  switch (type) {
    case ONNX_TYPE.FLOAT: case ONNX_TYPE.DOUBLE: case ONNX_TYPE.FLOAT16: case ONNX_TYPE.BFLOAT16:
      return 'float32';
    case ONNX_TYPE.BOOL:
      return 'bool';
    case ONNX_TYPE.UINT8: case ONNX_TYPE.INT8: case ONNX_TYPE.UINT16: case ONNX_TYPE.INT16:
    case ONNX_TYPE.INT32: case ONNX_TYPE.INT64: case ONNX_TYPE.UINT32: case ONNX_TYPE.UINT64:
      return 'int32';
    default:
      return undefined;
  }
}

/** Reads external data: `location` relative to the model's directory, an optional offset and length. */
export type ExternalReader = (location: string, offset: number, length: number | undefined) => Uint8Array;

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction === 0 ? sign * Infinity : NaN;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
const clampInt = (v: number): number => (v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : v);

/** The raw bytes' elements as numbers (little endian, as ONNX stores them). */
function fromRaw(type: number, raw: Uint8Array, count: number, where: string): ArrayLike<number> {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const width: Record<number, number> = { 1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2 };
  const w = width[type];
  if (w === undefined) throw new Error(`${where}: Kiln cannot read ${onnxTypeName(type)} tensors`);
  if (raw.byteLength !== count * w) {
    throw new Error(`${where}: ${raw.byteLength} bytes of data for ${count} ${onnxTypeName(type)} elements (expected ${count * w})`);
  }
  if (type === ONNX_TYPE.FLOAT) {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
    return out;
  }
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const o = i * w;
    switch (type) {
      case ONNX_TYPE.UINT8: case ONNX_TYPE.BOOL: out[i] = view.getUint8(o); break;
      case ONNX_TYPE.INT8: out[i] = view.getInt8(o); break;
      case ONNX_TYPE.UINT16: out[i] = view.getUint16(o, true); break;
      case ONNX_TYPE.INT16: out[i] = view.getInt16(o, true); break;
      case ONNX_TYPE.INT32: out[i] = view.getInt32(o, true); break;
      case ONNX_TYPE.UINT32: out[i] = view.getUint32(o, true); break;
      case ONNX_TYPE.INT64: out[i] = clampInt(Number(view.getBigInt64(o, true))); break;
      case ONNX_TYPE.UINT64: out[i] = clampInt(Number(view.getBigUint64(o, true))); break;
      case ONNX_TYPE.FLOAT16: out[i] = halfToFloat(view.getUint16(o, true)); break;
      case ONNX_TYPE.BFLOAT16: out[i] = new Float32Array(new Uint32Array([view.getUint16(o, true) << 16]).buffer)[0]; break;
      case ONNX_TYPE.DOUBLE: out[i] = view.getFloat64(o, true); break;
    }
  }
  return out;
}

/** The elements of a TensorProto as numbers, from whichever field holds them. */
function elements(t: TensorProto, count: number, where: string, readExternal?: ExternalReader): ArrayLike<number> {
  const type = t.dataType ?? 0;
  if (t.dataLocation === 1) {
    const entry = (key: string): string | undefined => t.externalData?.find((e) => e.key === key)?.value;
    const location = entry('location');
    if (location === undefined) throw new Error(`${where}: external data without a location`);
    if (readExternal === undefined) throw new Error(`${where}: the tensor's data is in the external file '${location}'; load the model from a path (or pass options.externalData) so Kiln can read it`);
    const length = entry('length');
    return fromRaw(type, readExternal(location, Number(entry('offset') ?? 0), length === undefined ? undefined : Number(length)), count, where);
  }
  if (t.rawData !== undefined && t.rawData.byteLength > 0) return fromRaw(type, t.rawData, count, where);
  switch (type) {
    case ONNX_TYPE.FLOAT: return t.floatData ?? [];
    case ONNX_TYPE.DOUBLE: return t.doubleData ?? [];
    case ONNX_TYPE.INT64: return (t.int64Data ?? []).map(clampInt);
    case ONNX_TYPE.UINT32: case ONNX_TYPE.UINT64: return (t.uint64Data ?? []).map(clampInt);
    // int32_data also carries the 8- and 16-bit types, bool, and float16's bit patterns.
    case ONNX_TYPE.FLOAT16: return (t.int32Data ?? []).map(halfToFloat);
    case ONNX_TYPE.BFLOAT16: return (t.int32Data ?? []).map((b) => new Float32Array(new Uint32Array([b << 16]).buffer)[0]);
    default: return t.int32Data ?? [];
  }
}

/** A Kiln tensor holding a TensorProto's values (see the dtype policy above). */
export function tensorFromProto(t: TensorProto, where: string, readExternal?: ExternalReader): Tensor {
  const type = t.dataType ?? 0;
  const dtype = kilnDType(type);
  if (dtype === undefined) throw new Error(`${where}: Kiln has no ${onnxTypeName(type)} tensors`);
  const shape = (t.dims ?? []).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const values = elements(t, count, where, readExternal);
  if (values.length !== count) {
    throw new Error(`${where}: ${values.length} values for shape [${shape.join(', ')}] (${count} elements)`);
  }
  if (dtype === 'float32') return tensor(values instanceof Float32Array ? values : Float32Array.from(values), shape, 'float32');
  if (dtype === 'int32') return tensor(Int32Array.from(values), shape, 'int32');
  return tensor(Uint8Array.from(values, (v) => (v ? 1 : 0)), shape, 'bool');
}

/** A TensorProto (raw little-endian data) from a Kiln tensor: float32 -> FLOAT, int32 -> INT64, bool -> BOOL. */
export function tensorToProto(t: Tensor, name: string, as: 'int32' | 'int64' = 'int64'): TensorProto {
  const data = t.dataSync();
  let raw: Uint8Array;
  let dataType: number;
  if (t.dtype === 'float32') {
    raw = new Uint8Array(new Float32Array(data).buffer);
    dataType = ONNX_TYPE.FLOAT;
  } else if (t.dtype === 'bool') {
    raw = new Uint8Array(data);
    dataType = ONNX_TYPE.BOOL;
  } else if (as === 'int32') {
    raw = new Uint8Array(new Int32Array(data).buffer);
    dataType = ONNX_TYPE.INT32;
  } else {
    raw = new Uint8Array(new BigInt64Array(Array.from(data, (v) => BigInt(v))).buffer);
    dataType = ONNX_TYPE.INT64;
  }
  return { name, dims: [...t.shape], dataType, rawData: raw };
}
