/**
 * A saved model on disk: a directory holding the two files of model-format.ts
 * (`model.safetensors` and `config.json`).
 *
 *   saveModel('out/mlp', { stateDict: model.stateDict(), config: { layers: [784, 512, 10] } });
 *   const { stateDict, config } = loadModel('out/mlp');
 *
 * The two files are written as one unit (commit.ts): a save killed at any moment leaves the
 * complete old model or the complete new one, and the next save cleans up what the crash left.
 * Their shared save id catches a pair mixed by hand or by another tool, and the weights' CRC-32
 * catches a damaged copy.
 */

import fs from 'node:fs';
import path from 'node:path';
import type { Tensor } from '../tensor.js';
import { readFileOrThrow } from './files.js';
import { existsCommitted, readCommitted, writeFilesAsUnit } from './commit.js';
import { CONFIG_FILE, WEIGHTS_FILE, decodeWeights, encodeModel, parseConfig, type ConfigFile, type SavedModel } from './model-format.js';
import { kilnVersion } from './version.js';

export { CONFIG_FILE, MODEL_FORMAT_VERSION, WEIGHTS_FILE, type SavedModel } from './model-format.js';

/** config.json is a description, not data: anything larger is not one saveModel wrote. */
const MAX_CONFIG_BYTES = 64 * 1024 * 1024;

/**
 * Saves a model to directory `dir` (created if needed): `model.safetensors` with the state dict and
 * `config.json` with `config` (plain JSON: objects, arrays, strings, finite numbers, booleans, null).
 * Replaces an earlier save in the same directory as a unit: if the process dies during the save,
 * loadModel finds the complete old model or the complete new one, never a mix or neither.
 */
export function saveModel(dir: string, model: { stateDict: Record<string, Tensor>; config: object }): void {
  const op = 'saveModel';
  // Encoded before the disk is touched, so bad input never leaves half a save.
  const files = encodeModel(op, model, kilnVersion());
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) throw new Error(`${op}: '${dir}' exists and is not a directory`);
  fs.mkdirSync(dir, { recursive: true });
  writeFilesAsUnit(op, dir, { [WEIGHTS_FILE]: files.weights, [CONFIG_FILE]: files.config });
}

/** Reads and checks config.json; every problem names the file. */
function readConfig(op: string, dir: string): ConfigFile {
  const file = path.join(dir, CONFIG_FILE);
  if (!existsCommitted(dir, CONFIG_FILE)) {
    throw new Error(`${op}: '${dir}' has no ${CONFIG_FILE} (a saved model directory holds ${CONFIG_FILE} and ${WEIGHTS_FILE}, as written by saveModel)`);
  }
  const bytes = readCommitted(dir, CONFIG_FILE, (f) => readFileOrThrow(op, f, MAX_CONFIG_BYTES));
  return parseConfig(op, bytes, file, kilnVersion());
}

/**
 * Loads a model saved by saveModel: `{ stateDict, config }`. Throws a message naming the file and
 * the problem if either file is missing or corrupt, or if they come from different saves. The
 * caller owns the tensors (`kiln.dispose(result.stateDict)` after loading them into a module).
 */
export function loadModel(dir: string): SavedModel {
  const op = 'loadModel';
  if (!fs.existsSync(dir)) throw new Error(`${op}: the directory '${dir}' does not exist`);
  if (!fs.statSync(dir).isDirectory()) throw new Error(`${op}: '${dir}' is not a directory (saveModel writes a directory with ${CONFIG_FILE} and ${WEIGHTS_FILE})`);
  const config = readConfig(op, dir);
  const weightsFile = path.join(dir, WEIGHTS_FILE);
  if (!existsCommitted(dir, WEIGHTS_FILE)) throw new Error(`${op}: '${dir}' has ${CONFIG_FILE} but no ${WEIGHTS_FILE}; the weights are missing`);
  return decodeWeights(op, config, readCommitted(dir, WEIGHTS_FILE, (f) => readFileOrThrow(op, f)), weightsFile, dir);
}
