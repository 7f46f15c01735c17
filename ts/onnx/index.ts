/**
 * kiln.onnx: ONNX models in and out.
 *
 *   const model = kiln.onnx.load('squeezenet.onnx');      // an nn.Module
 *   const logits = model.forward(images);                  // [batch, 3, 224, 224] -> [batch, 1000]
 *   kiln.fit(model.train(), data, { ... });                // it fine-tunes like any module
 */

import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, normalize } from 'node:path';
import { checkBytes, loadBytes, toOnnxBytes, type ExportableModel, type OnnxCheck, type OnnxModel, type SaveOptions } from './core.js';
import type { ExternalReader } from './tensors.js';
import { writeFileAtomic } from '../io/files.js';
import type { Tensor } from '../tensor.js';

export { OnnxModel, supportedOps, decodeTensor, tensorFromProto, type OnnxValueInfo, type OnnxCheck, type ExportableModel, type SaveOptions, type TensorProto, type ExternalReader } from './core.js';

/** Options of {@link load}: where the tensors of a model stored with external data are read from. */
export interface LoadOptions {
  /**
   * Where external data files (tensors stored beside the model, for models over 2 GB) are read
   * from: defaults to the model file's directory; required when loading from bytes.
   */
  externalDataDir?: string;
}

/** Reads external data files, refusing locations that leave `dir` (a crafted file must not read /etc/passwd). */
function externalReader(dir: string): ExternalReader {
  return (location, offset, length) => {
    const path = normalize(join(dir, location));
    if (isAbsolute(location) || !path.startsWith(normalize(dir))) {
      throw new Error(`onnx.load: external data location '${location}' is outside the model's directory`);
    }
    const bytes = readFileSync(path);
    const end = length === undefined ? bytes.byteLength : offset + length;
    if (offset < 0 || end > bytes.byteLength) {
      throw new Error(`onnx.load: external data '${location}' has ${bytes.byteLength} bytes; the model asks for [${offset}, ${end})`);
    }
    return bytes.subarray(offset, end);
  };
}

/** Reads a model's op types without building it (a path or the bytes): which ops it uses and which Kiln lacks. */
export function check(source: string | Uint8Array): OnnxCheck {
  return checkBytes(typeof source === 'string' ? readFileSync(source) : source);
}

/**
 * Loads an ONNX model (a path to a .onnx file, or its bytes) as an nn.Module on the active
 * backend. Every node's op is checked first: unsupported ops are all listed in one Error naming
 * each op, its node and the model's opset. The model starts in eval mode.
 */
export function load(source: string | Uint8Array, options: LoadOptions = {}): OnnxModel {
  let bytes: Uint8Array;
  let dir = options.externalDataDir;
  if (typeof source === 'string') {
    try {
      bytes = readFileSync(source);
    } catch (e) {
      throw new Error(`onnx.load: cannot read '${source}': ${(e as Error).message}`);
    }
    dir ??= dirname(source);
  } else {
    bytes = source;
  }
  return loadBytes(bytes, dir === undefined ? undefined : externalReader(dir));
}

/**
 * Exports `model` to an ONNX file at `path` by tracing `model.forward(...exampleInputs)` in eval
 * mode (see export/save.ts); returns the bytes. The graph has the example inputs' shapes.
 * Opset 17: onnxruntime and onnxruntime-web load it.
 */
export function save(model: ExportableModel, exampleInputs: Tensor | Tensor[], path?: string, options: SaveOptions = {}): Uint8Array {
  const bytes = toOnnxBytes(model, exampleInputs, options);
  if (path !== undefined) writeFileAtomic(path, bytes);
  return bytes;
}
