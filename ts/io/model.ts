/**
 * A saved model is a directory: `model.safetensors` holds the weights (loadable by any safetensors
 * reader) and `config.json` holds the caller's description of the architecture, wrapped with the
 * file format version and the Kiln version that wrote it.
 *
 *   saveModel('out/mlp', { stateDict: model.stateDict(), config: { layers: [784, 512, 10] } });
 *   const { stateDict, config } = loadModel('out/mlp');
 *
 * The two files are written as one unit (commit.ts): a save killed at any moment leaves the
 * complete old model or the complete new one, and the next save cleans up what the crash left. Both
 * files also carry the same random save id, so a pair mixed by hand or by another tool is detected
 * on load instead of silently combining new weights with an old architecture; and the weights carry
 * a CRC-32 of their data, so a damaged copy is detected instead of loaded.
 */

import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Tensor } from '../tensor.js';
import { dispose } from '../engine.js';
import { encodeWith, decodeWith } from './safetensors.js';
import { readFileOrThrow } from './files.js';
import { existsCommitted, readCommitted, writeFilesAsUnit } from './commit.js';
import { checkJsonable, type JsonObject } from './json.js';
import { kilnVersion } from './version.js';

export const WEIGHTS_FILE = 'model.safetensors';
export const CONFIG_FILE = 'config.json';
/** Bumped when the layout of a saved model changes; loadModel refuses versions it does not know. */
export const MODEL_FORMAT_VERSION = 1;
const FORMAT_NAME = 'kiln-model';
const SAVE_ID_KEY = 'kiln.save_id';
/** config.json is a description, not data: anything larger is not one saveModel wrote. */
const MAX_CONFIG_BYTES = 64 * 1024 * 1024;

/** What saveModel takes and loadModel returns. */
export interface SavedModel {
  /** Parameter (and buffer) tensors by name, e.g. from `module.stateDict()`. */
  stateDict: Record<string, Tensor>;
  /** Plain JSON describing the architecture, enough to rebuild the model before loading weights. */
  config: JsonObject;
}

/** The contents of config.json. */
interface ConfigFile {
  format: string;
  formatVersion: number;
  kilnVersion: string;
  saveId: string;
  config: JsonObject;
}

/**
 * Saves a model to directory `dir` (created if needed): `model.safetensors` with the state dict and
 * `config.json` with `config` (plain JSON: objects, arrays, strings, finite numbers, booleans, null).
 * Replaces an earlier save in the same directory as a unit: if the process dies during the save,
 * loadModel finds the complete old model or the complete new one, never a mix or neither.
 */
export function saveModel(dir: string, model: { stateDict: Record<string, Tensor>; config: object }): void {
  const op = 'saveModel';
  const { stateDict, config } = model ?? {};
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new Error(`${op}: config must be a JSON object describing the architecture, got ${Array.isArray(config) ? 'an array' : String(config)}`);
  }
  checkJsonable(config, op, 'config');
  const saveId = randomBytes(8).toString('hex');
  // Encode and serialize both before touching the disk, so bad input never leaves half a save.
  const weights = encodeWith(op, stateDict, { 'kiln.format': FORMAT_NAME, [SAVE_ID_KEY]: saveId }, true);
  const file: ConfigFile = { format: FORMAT_NAME, formatVersion: MODEL_FORMAT_VERSION, kilnVersion: kilnVersion(), saveId, config: config as JsonObject };
  const configBytes = new TextEncoder().encode(`${JSON.stringify(file, null, 2)}\n`);
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) throw new Error(`${op}: '${dir}' exists and is not a directory`);
  fs.mkdirSync(dir, { recursive: true });
  writeFilesAsUnit(op, dir, { [WEIGHTS_FILE]: weights, [CONFIG_FILE]: configBytes });
}

/** Reads and checks config.json; every problem names the file. */
function readConfig(op: string, dir: string): ConfigFile {
  const file = path.join(dir, CONFIG_FILE);
  if (!existsCommitted(dir, CONFIG_FILE)) {
    throw new Error(`${op}: '${dir}' has no ${CONFIG_FILE} (a saved model directory holds ${CONFIG_FILE} and ${WEIGHTS_FILE}, as written by saveModel)`);
  }
  const bad = (problem: string): never => {
    throw new Error(`${op}: '${file}' is corrupt or not from saveModel: ${problem}`);
  };
  const bytes = readCommitted(dir, CONFIG_FILE, (f) => readFileOrThrow(op, f, MAX_CONFIG_BYTES));
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    bad(`it is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return bad('it is not a JSON object');
  const c = parsed as Partial<ConfigFile>;
  if (c.format !== FORMAT_NAME) bad(`"format" should be "${FORMAT_NAME}", got ${JSON.stringify(c.format)}`);
  if (typeof c.formatVersion !== 'number' || !Number.isInteger(c.formatVersion) || c.formatVersion < 1) {
    bad(`"formatVersion" should be a positive integer, got ${JSON.stringify(c.formatVersion)}`);
  }
  if (c.formatVersion! > MODEL_FORMAT_VERSION) {
    throw new Error(`${op}: '${file}' has format version ${c.formatVersion} (written by Kiln ${c.kilnVersion}); this Kiln (${kilnVersion()}) reads up to version ${MODEL_FORMAT_VERSION}: upgrade Kiln`);
  }
  if (typeof c.config !== 'object' || c.config === null || Array.isArray(c.config)) bad(`"config" should be a JSON object, got ${JSON.stringify(c.config)}`);
  return c as ConfigFile;
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
  const { tensors, metadata } = decodeWith(`${op}: '${weightsFile}'`, readCommitted(dir, WEIGHTS_FILE, (f) => readFileOrThrow(op, f)));
  const weightsId = metadata[SAVE_ID_KEY];
  // Weights rewritten by another tool carry no save id; only a conflicting id proves a mixed pair.
  if (weightsId !== undefined && typeof config.saveId === 'string' && weightsId !== config.saveId) {
    dispose(tensors);
    throw new Error(`${op}: ${WEIGHTS_FILE} and ${CONFIG_FILE} in '${dir}' come from different saves (save ids ${weightsId} and ${config.saveId}); were the files copied or replaced separately?`);
  }
  return { stateDict: tensors, config: config.config };
}
