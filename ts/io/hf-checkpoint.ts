/**
 * PyTorch and Hugging Face checkpoints on disk (Node only): one safetensors file, or a sharded
 * checkpoint, i.e. `model.safetensors.index.json` (`{ "metadata": {...}, "weight_map": { tensor
 * name: shard file } }`) beside the shard files it names, as `transformers` and `huggingface_hub`
 * write them.
 *
 *   kiln.io.loadPyTorchWeights(model, 'checkpoints/bert');          // a directory, index or file
 *   kiln.io.savePyTorchWeights('out/model.safetensors', model, { dtype: 'BF16' });
 */

import fs from 'node:fs';
import path from 'node:path';
import { Tensor } from '../tensor.js';
import { dispose } from '../engine.js';
import type { AnyModule, LoadStateDictResult } from '../nn/module.js';
import { decodeWith, encodeWith, type DecodedSafetensors } from './safetensors.js';
import { readFileOrThrow, writeFileAtomic } from './files.js';
import { STORAGE, checkStorageOptions, storageFor, type FloatStorage, type SafetensorsDtype } from './safetensors-dtypes.js';
import { counterNames, loadPyTorchWith, pytorchStateDict, type LoadPyTorchOptions } from './pytorch.js';

/** The file names Hugging Face uses for a single-file and a sharded checkpoint. */
export const HF_WEIGHTS_FILE = 'model.safetensors';
/**
 * The index file of a sharded Hugging Face checkpoint: JSON mapping each tensor name to the
 * shard file holding it. In a directory it takes precedence over model.safetensors.
 */
export const HF_INDEX_FILE = 'model.safetensors.index.json';

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads and checks an index file: its weight_map, and that every shard is a plain file name beside it. */
function readIndex(op: string, indexFile: string): { weightMap: Map<string, string>; metadata: Record<string, string> } {
  const bad: (problem: string) => never = (problem) => {
    throw new Error(`${op}: '${indexFile}' is not a valid sharded-checkpoint index: ${problem}`);
  };
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(readFileOrThrow(op, indexFile)));
  } catch (e) {
    if ((e as Error).message.startsWith(op)) throw e;
    bad(`it is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (!isObject(parsed)) return bad('it is not a JSON object');
  if (!isObject(parsed.weight_map)) bad('it has no "weight_map" object mapping tensor names to shard files');
  const weightMap = new Map<string, string>();
  for (const [name, shard] of Object.entries(parsed.weight_map as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard === '') bad(`weight_map['${name}'] must be a shard file name, got ${JSON.stringify(shard)}`);
    // Shards live beside the index: a path would let an index read any file on the machine.
    if (shard !== path.basename(shard) || shard === '.' || shard === '..' || shard.includes('\\')) {
      bad(`weight_map['${name}'] is '${shard}', which is not a file name in the index's directory`);
    }
    weightMap.set(name, shard);
  }
  const metadata: Record<string, string> = {};
  if (isObject(parsed.metadata)) {
    for (const [k, v] of Object.entries(parsed.metadata)) {
      Object.defineProperty(metadata, k, { value: typeof v === 'string' ? v : JSON.stringify(v), enumerable: true, writable: true, configurable: true });
    }
  }
  return { weightMap, metadata };
}

/**
 * Loads a sharded safetensors checkpoint from its index file (`model.safetensors.index.json`): every
 * shard it names, each checked to hold exactly the tensors the weight_map assigns to it. Any dtype
 * `loadTensors` reads. The caller owns the tensors; `metadata` is the index's (non-string values
 * as JSON). Throws naming the index or the shard at fault; nothing is left behind then.
 */
export function loadShardedTensors(indexFile: string): DecodedSafetensors {
  return loadShardedWith('loadShardedTensors', indexFile);
}

function loadShardedWith(op: string, indexFile: string): DecodedSafetensors {
  const { weightMap, metadata } = readIndex(op, indexFile);
  const dir = path.dirname(indexFile);
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of weightMap) byShard.set(shard, [...(byShard.get(shard) ?? []), name]);
  const tensors: Record<string, Tensor> = {};
  try {
    for (const [shard, names] of byShard) {
      const file = path.join(dir, shard);
      const decoded = decodeWith(`${op}: shard '${file}'`, readFileOrThrow(op, file));
      const listed = new Set(names);
      const notListed = Object.keys(decoded.tensors).filter((n) => !listed.has(n));
      const absent = names.filter((n) => !Object.hasOwn(decoded.tensors, n));
      for (const [name, t] of Object.entries(decoded.tensors)) Object.defineProperty(tensors, name, { value: t, enumerable: true, writable: true, configurable: true });
      if (absent.length > 0) throw new Error(`${op}: '${indexFile}' maps ${absent.map((n) => `'${n}'`).join(', ')} to shard '${shard}', which does not hold ${absent.length > 1 ? 'them' : 'it'}`);
      if (notListed.length > 0) throw new Error(`${op}: shard '${shard}' holds ${notListed.map((n) => `'${n}'`).join(', ')}, which '${indexFile}' does not map to it`);
    }
  } catch (e) {
    dispose(tensors);
    throw e;
  }
  return { tensors, metadata };
}

/**
 * Saves named tensors as a sharded checkpoint in `dir` (created if needed): shards
 * `model-00001-of-0000N.safetensors` of at most `maxShardBytes` each (a larger single tensor gets a
 * shard of its own) and the index `model.safetensors.index.json`, which `loadShardedTensors` and
 * Hugging Face's loaders read. Each file is written atomically; the index last.
 */
export function saveShardedTensors(dir: string, tensors: Record<string, Tensor>, options: { maxShardBytes?: number; dtype?: FloatStorage; dtypes?: Record<string, SafetensorsDtype>; metadata?: Record<string, string> } = {}): void {
  const op = 'saveShardedTensors';
  const limit = options.maxShardBytes ?? 5e9;
  if (!(limit > 0)) throw new Error(`${op}: maxShardBytes must be a positive number, got ${options.maxShardBytes}`);
  if (typeof tensors !== 'object' || tensors === null) throw new Error(`${op}: expected an object mapping names to tensors, got ${tensors}`);
  checkStorageOptions(op, Object.keys(tensors), options);
  const sized = Object.entries(tensors).map(([name, t]) => {
    if (!(t instanceof Tensor) || t.isDisposed) throw new Error(`${op}: '${name}' is not a live Tensor`);
    return { name, t, bytes: t.size * STORAGE[storageFor(op, name, t.dtype, options)].bytes };
  });
  const shards: Array<typeof sized> = [];
  let size = Infinity;
  for (const item of sized) {
    if (size + item.bytes > limit) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1].push(item);
    size += item.bytes;
  }
  if (shards.length === 0) shards.push([]);
  const pad = (n: number) => String(n).padStart(5, '0');
  const files = shards.map((_, i) => `model-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`);
  const encoded = shards.map((items) => {
    const part = Object.fromEntries(items.map((i) => [i.name, i.t]));
    const dtypes = Object.fromEntries(items.filter((i) => options.dtypes?.[i.name]).map((i) => [i.name, options.dtypes![i.name]]));
    return encodeWith(op, part, { format: 'pt', ...options.metadata }, { dtype: options.dtype, dtypes });
  });
  const weightMap: Record<string, string> = {};
  shards.forEach((items, i) => items.forEach((item) => (weightMap[item.name] = files[i])));
  // As Hugging Face's writers: total_size counts the tensors' bytes, not the files' headers.
  const totalSize = sized.reduce((sum, item) => sum + item.bytes, 0);
  const index = { metadata: { total_size: totalSize }, weight_map: weightMap };
  fs.mkdirSync(dir, { recursive: true });
  encoded.forEach((bytes, i) => writeFileAtomic(path.join(dir, files[i]), bytes));
  writeFileAtomic(path.join(dir, HF_INDEX_FILE), new TextEncoder().encode(`${JSON.stringify(index, null, 2)}\n`));
}

/** Options of loadPyTorchWeights. */
export interface LoadPyTorchWeightsOptions extends LoadPyTorchOptions {
  /**
   * Only tensors whose names start with this prefix are loaded, with the prefix removed: e.g.
   * 'bert.' to load a backbone out of a checkpoint of a whole task model.
   */
  prefix?: string;
}

/** Which file a checkpoint path means: a safetensors file, an index, or a directory holding either. */
function resolveCheckpoint(op: string, source: string): { file: string; sharded: boolean } {
  if (typeof source !== 'string') throw new Error(`${op}: expected a path, got ${typeof source}`);
  if (!fs.existsSync(source)) throw new Error(`${op}: '${source}' does not exist`);
  if (fs.statSync(source).isDirectory()) {
    const index = path.join(source, HF_INDEX_FILE);
    if (fs.existsSync(index)) return { file: index, sharded: true };
    const single = path.join(source, HF_WEIGHTS_FILE);
    if (fs.existsSync(single)) return { file: single, sharded: false };
    throw new Error(`${op}: the directory '${source}' has neither ${HF_INDEX_FILE} nor ${HF_WEIGHTS_FILE}`);
  }
  return { file: source, sharded: source.endsWith('.json') };
}

/**
 * Loads PyTorch / Hugging Face weights into `module` (in place) from `source`: a `.safetensors`
 * file, a sharded checkpoint's `model.safetensors.index.json`, or a directory holding either.
 * Names follow PyTorch (see docs/weights.md for the mapping per layer); F16, BF16, F64 and I64
 * tensors are converted. Every key and shape is checked before anything is written, and the error
 * lists all missing, unexpected and mismatched keys. Returns the missing and unexpected keys
 * (non-empty only with `strict: false`).
 */
export function loadPyTorchWeights(module: AnyModule, source: string, options: LoadPyTorchWeightsOptions = {}): LoadStateDictResult {
  const op = 'loadPyTorchWeights';
  const { file, sharded } = resolveCheckpoint(op, source);
  const { tensors } = sharded ? loadShardedWith(op, file) : decodeWith(`${op}: '${file}'`, readFileOrThrow(op, file));
  try {
    let state = tensors;
    if (options.prefix !== undefined) {
      const prefix = options.prefix;
      state = {};
      for (const [name, t] of Object.entries(tensors)) {
        if (name.startsWith(prefix)) Object.defineProperty(state, name.slice(prefix.length), { value: t, enumerable: true, writable: true, configurable: true });
      }
    }
    return loadPyTorchWith(`${op}: '${file}'${options.prefix !== undefined ? ` (prefix '${options.prefix}')` : ''}`, module, state, options);
  } finally {
    dispose(tensors);
  }
}

/**
 * Saves `module`'s weights under PyTorch's names and layouts (`pytorchStateDict`) as a safetensors
 * file that `safetensors.torch.load_file` + `model.load_state_dict` read. `dtype` stores the
 * float32 tensors as 'F16', 'BF16' (round to nearest even) or 'F64' instead of 'F32';
 * num_batches_tracked is written as int64, as PyTorch has it. With `maxShardBytes`, `target` is a
 * directory and the weights are written as a sharded checkpoint (see saveShardedTensors). Atomic
 * per file.
 */
export function savePyTorchWeights(target: string, module: AnyModule, options: { dtype?: FloatStorage; metadata?: Record<string, string>; maxShardBytes?: number } = {}): void {
  const state = pytorchStateDict(module);
  try {
    const dtypes: Record<string, SafetensorsDtype> = Object.fromEntries(counterNames(module).map((n) => [n, 'I64']));
    if (options.maxShardBytes !== undefined) saveShardedTensors(target, state, { ...options, dtypes });
    else writeFileAtomic(target, encodeWith('savePyTorchWeights', state, { format: 'pt', ...options.metadata }, { dtype: options.dtype, dtypes }));
  } finally {
    dispose(state);
  }
}
