/**
 * Decoding and encoding ONNX protobuf messages with protobufjs and the official schema
 * (onnx-proto.ts). Messages come back as plain objects: int64 fields as numbers, bytes as
 * Uint8Array, enums as numbers, so the rest of ts/onnx never sees protobufjs types.
 */

import protobuf from 'protobufjs';
import { ONNX_PROTO } from './onnx-proto.js';

/** The subset of onnx.TensorProto Kiln reads (field names as in onnx.proto, camelCased). */
export interface TensorProto {
  dims?: number[];
  dataType?: number;
  floatData?: number[];
  int32Data?: number[];
  int64Data?: number[];
  doubleData?: number[];
  uint64Data?: number[];
  rawData?: Uint8Array;
  name?: string;
  dataLocation?: number;
  externalData?: Array<{ key?: string; value?: string }>;
}

export interface AttributeProto {
  name?: string;
  type?: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  floats?: number[];
  ints?: number[];
  strings?: Uint8Array[];
  tensors?: TensorProto[];
}

export interface NodeProto {
  input?: string[];
  output?: string[];
  name?: string;
  opType?: string;
  domain?: string;
  attribute?: AttributeProto[];
}

export interface DimensionProto {
  dimValue?: number;
  dimParam?: string;
}

export interface ValueInfoProto {
  name?: string;
  type?: { tensorType?: { elemType?: number; shape?: { dim?: DimensionProto[] } } };
}

export interface GraphProto {
  node?: NodeProto[];
  name?: string;
  initializer?: TensorProto[];
  input?: ValueInfoProto[];
  output?: ValueInfoProto[];
  valueInfo?: ValueInfoProto[];
}

export interface ModelProto {
  irVersion?: number;
  opsetImport?: Array<{ domain?: string; version?: number }>;
  producerName?: string;
  producerVersion?: string;
  graph?: GraphProto;
}

let root: protobuf.Root | undefined;

/** The parsed schema, built once (parsing the 44 KB schema text takes a few milliseconds). */
function schema(): protobuf.Root {
  return (root ??= protobuf.parse(ONNX_PROTO, { keepCase: false }).root);
}

const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, bytes: Uint8Array as unknown as typeof String, enums: Number, defaults: false, arrays: true };

function decode<T>(typeName: string, bytes: Uint8Array, what: string): T {
  const type = schema().lookupType(typeName);
  let message: protobuf.Message;
  try {
    message = type.decode(bytes);
  } catch (e) {
    throw new Error(`onnx.load: ${what} is not a valid ONNX ${typeName} (${(e as Error).message})`);
  }
  return type.toObject(message, TO_OBJECT) as T;
}

/** Decodes a serialized onnx.ModelProto (a .onnx file's bytes). */
export function decodeModel(bytes: Uint8Array): ModelProto {
  return decode<ModelProto>('onnx.ModelProto', bytes, 'the file');
}

/** Decodes a serialized onnx.TensorProto (the .pb files of the ONNX test data). */
export function decodeTensor(bytes: Uint8Array): TensorProto {
  return decode<TensorProto>('onnx.TensorProto', bytes, 'the tensor file');
}

/** Serializes a plain ModelProto object (camelCase fields, as above) to bytes. */
export function encodeModel(model: ModelProto): Uint8Array {
  const type = schema().lookupType('onnx.ModelProto');
  const problem = type.verify(model);
  if (problem !== null) throw new Error(`onnx.save: internal error, the model does not match onnx.proto: ${problem}`);
  return type.encode(type.fromObject(model)).finish();
}
