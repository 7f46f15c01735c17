/**
 * kiln.onnx in the browser bundle: models from bytes (fetch them), export to bytes. External data
 * files need a file system and are Node-only.
 *
 *   const model = kiln.onnx.load(new Uint8Array(await (await fetch('model.onnx')).arrayBuffer()));
 */

import { checkBytes, loadBytes, toOnnxBytes, type ExportableModel, type OnnxCheck, type OnnxModel, type SaveOptions } from './core.js';
import type { Tensor } from '../tensor.js';

export { OnnxModel, supportedOps, decodeTensor, tensorFromProto, type OnnxValueInfo, type OnnxCheck, type ExportableModel, type SaveOptions, type TensorProto, type ExternalReader } from './core.js';

/** Loads an ONNX model from its bytes as an nn.Module on the WASM backend (see the Node entry's load). */
export function load(bytes: Uint8Array): OnnxModel {
  return loadBytes(bytes);
}

/** Which ops a model's bytes use and which of them Kiln lacks. */
export function check(bytes: Uint8Array): OnnxCheck {
  return checkBytes(bytes);
}

/** Exports `model` by tracing `model.forward(...exampleInputs)`; returns the ONNX file's bytes. */
export function save(model: ExportableModel, exampleInputs: Tensor | Tensor[], options: SaveOptions = {}): Uint8Array {
  return toOnnxBytes(model, exampleInputs, options);
}
