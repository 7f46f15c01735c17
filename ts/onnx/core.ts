/**
 * The platform-free half of kiln.onnx (bytes in, bytes out), shared by the Node entry
 * (onnx/index.ts, which adds file paths and external data files) and the browser bundle
 * (onnx/browser.ts).
 */

import { OnnxModel, valueInfo, type OnnxValueInfo } from './model.js';
import { decodeModel } from './proto.js';
import { OPS } from './ops/index.js';
import type { ExternalReader } from './tensors.js';

export { OnnxModel, type OnnxValueInfo } from './model.js';
export { supportedOps } from './ops/index.js';
export { decodeTensor, type TensorProto } from './proto.js';
export { tensorFromProto, type ExternalReader } from './tensors.js';
export { toOnnxBytes, type ExportableModel, type SaveOptions } from './export/save.js';

/** What `check` reports about a model file. */
export interface OnnxCheck {
  /** The default-domain opset the model imports. */
  opset: number;
  /** Every op type the graph uses, sorted. */
  opTypes: string[];
  /** The op types Kiln cannot import (empty when `load` will accept the model). */
  unsupported: string[];
  /** The graph's inputs (initializers excluded), with dtypes and shapes. */
  inputs: OnnxValueInfo[];
}

/** A model's op types from its bytes, without building it: which ops it uses and which Kiln lacks. */
export function checkBytes(bytes: Uint8Array): OnnxCheck {
  const model = decodeModel(bytes);
  const opset = Number(model.opsetImport?.find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx')?.version ?? 1);
  const opTypes = [...new Set((model.graph?.node ?? []).map((n) => n.opType ?? ''))].sort();
  const initializers = new Set((model.graph?.initializer ?? []).map((t) => t.name));
  const inputs = (model.graph?.input ?? []).filter((v) => !initializers.has(v.name)).map(valueInfo);
  return { opset, opTypes, unsupported: opTypes.filter((t) => !Object.hasOwn(OPS, t)), inputs };
}

/** An OnnxModel from a .onnx file's bytes; `readExternal` serves external data files. */
export function loadBytes(bytes: Uint8Array, readExternal?: ExternalReader): OnnxModel {
  if (!(bytes instanceof Uint8Array)) {
    throw new Error(`onnx.load: expected the model's bytes as a Uint8Array (or, in Node, a file path), got ${bytes === null ? 'null' : typeof bytes}`);
  }
  const model = decodeModel(bytes);
  if (model.graph === undefined) throw new Error('onnx.load: the file holds no graph (is it an ONNX model?)');
  return new OnnxModel(model, readExternal);
}
