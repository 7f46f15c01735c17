/**
 * The saved-model format, independent of where the bytes are kept: `model.safetensors` holds the
 * weights (loadable by any safetensors reader) and `config.json` holds the caller's description of
 * the architecture, wrapped with the format version and the Kiln version that wrote it. model.ts
 * keeps the two in a directory (Node), model-web.ts in IndexedDB, a download or a URL (browsers).
 *
 * Both files carry the same random save id, so a pair from two different saves (a save
 * interrupted between the files) is detected on load instead of silently mixing new weights with
 * an old architecture.
 */

import type { Tensor } from '../tensor.js';
import { dispose } from '../engine.js';
import { encodeWith, decodeWith } from './safetensors.js';
import { checkJsonable, type JsonObject } from './json.js';

/** The weights file's name in a saved model. */
export const WEIGHTS_FILE = 'model.safetensors';
/** The configuration file's name in a saved model. */
export const CONFIG_FILE = 'config.json';
/** Bumped when the layout of a saved model changes; loadModel refuses versions it does not know. */
export const MODEL_FORMAT_VERSION = 1;
const FORMAT_NAME = 'kiln-model';
const SAVE_ID_KEY = 'kiln.save_id';

/** What saveModel takes and loadModel returns. */
export interface SavedModel {
  /** Parameter (and buffer) tensors by name, e.g. from `module.stateDict()`. */
  stateDict: Record<string, Tensor>;
  /** Plain JSON describing the architecture, enough to rebuild the model before loading weights. */
  config: JsonObject;
}

/** The two files of a saved model, as bytes. */
export interface ModelFiles {
  config: Uint8Array;
  weights: Uint8Array;
}

/** The contents of config.json. */
export interface ConfigFile {
  format: string;
  formatVersion: number;
  kilnVersion: string;
  saveId: string;
  config: JsonObject;
}

/** 16 hex digits from the platform's CSPRNG (Web Crypto: in browsers and in Node 20+). */
function randomSaveId(): string {
  return Array.from(globalThis.crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Checks and encodes a model into its two files, before anything is stored, so bad input never
 * leaves half a save. `op` names the public function in errors; `version` is Kiln's version.
 */
export function encodeModel(op: string, model: { stateDict: Record<string, Tensor>; config: object }, version: string): ModelFiles {
  const { stateDict, config } = model ?? {};
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new Error(`${op}: config must be a JSON object describing the architecture, got ${Array.isArray(config) ? 'an array' : String(config)}`);
  }
  checkJsonable(config, op, 'config');
  const saveId = randomSaveId();
  const weights = encodeWith(op, stateDict, { 'kiln.format': FORMAT_NAME, [SAVE_ID_KEY]: saveId }, { checksum: true });
  const file: ConfigFile = { format: FORMAT_NAME, formatVersion: MODEL_FORMAT_VERSION, kilnVersion: version, saveId, config: config as JsonObject };
  return { config: new TextEncoder().encode(`${JSON.stringify(file, null, 2)}\n`), weights };
}

/** Parses and checks config.json's bytes; every problem names `where` (the file or URL). */
export function parseConfig(op: string, bytes: Uint8Array, where: string, version: string): ConfigFile {
  const bad = (problem: string): never => {
    throw new Error(`${op}: '${where}' is corrupt or not from saveModel: ${problem}`);
  };
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
    throw new Error(`${op}: '${where}' has format version ${c.formatVersion} (written by Kiln ${c.kilnVersion}); this Kiln (${version}) reads up to version ${MODEL_FORMAT_VERSION}: upgrade Kiln`);
  }
  if (typeof c.config !== 'object' || c.config === null || Array.isArray(c.config)) bad(`"config" should be a JSON object, got ${JSON.stringify(c.config)}`);
  return c as ConfigFile;
}

/**
 * Decodes the weights that go with a parsed config.json. `weightsWhere` names the weights in
 * errors, `modelWhere` the saved model. The caller owns the returned tensors.
 */
export function decodeWeights(op: string, config: ConfigFile, bytes: Uint8Array, weightsWhere: string, modelWhere: string): SavedModel {
  const { tensors, metadata } = decodeWith(`${op}: '${weightsWhere}'`, bytes);
  const weightsId = metadata[SAVE_ID_KEY];
  // Weights rewritten by another tool carry no save id; only a conflicting id proves a mixed pair.
  if (weightsId !== undefined && typeof config.saveId === 'string' && weightsId !== config.saveId) {
    dispose(tensors);
    throw new Error(`${op}: ${WEIGHTS_FILE} and ${CONFIG_FILE} in '${modelWhere}' come from different saves (save ids ${weightsId} and ${config.saveId}); were the files copied or replaced separately?`);
  }
  return { stateDict: tensors, config: config.config };
}
