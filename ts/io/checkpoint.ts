/**
 * Training checkpoints: everything needed to resume a run, in one safetensors file written
 * atomically (an interrupted save keeps the previous checkpoint, and the next save removes the
 * temporary file it left). The data section carries a CRC-32, so corrupted weights are detected;
 * the metadata is checked as strictly as the tensors (bounded step counts and learning rate).
 *
 * Layout: model tensors are stored as 'model.<name>', the optimizer's state tensors as
 * 'optimizer.<parameter>.<slot>'; everything else is JSON in the file's string metadata:
 *   kiln.format 'kiln-checkpoint', kiln.format_version, kiln.version,
 *   epoch, optimizer {kind, step, lr, slots: state tensors per parameter}, schedule, extra.
 * So a checkpoint is also readable by any safetensors tool.
 *
 *   saveCheckpoint('ckpt.safetensors', { model: net.stateDict(), optimizer: opt.state(), schedule: sched.state(), epoch });
 *   const ckpt = loadCheckpoint('ckpt.safetensors');
 *   checkCompatible(net.stateDict(), ckpt.model);
 *   net.loadStateDict(ckpt.model); opt.loadState(ckpt.optimizer!); sched.loadState(ckpt.schedule!);
 *   disposeCheckpoint(ckpt); // both loaders copy, so the loaded tensors can go
 */

import { Tensor } from '../tensor.js';
import { dispose } from '../engine.js';
import type { OptimizerState } from '../optim/optimizer.js';
import { encodeWith, decodeWith } from './safetensors.js';
import { readFileOrThrow, writeFileAtomic } from './files.js';
import { checkJsonable } from './json.js';
import { kilnVersion } from './version.js';

/** Bumped when the checkpoint layout changes; loadCheckpoint refuses versions it does not know. */
export const CHECKPOINT_FORMAT_VERSION = 1;
const FORMAT_NAME = 'kiln-checkpoint';

/** What saveCheckpoint takes and loadCheckpoint returns. */
export interface Checkpoint {
  /** The model's state dict. */
  model: Record<string, Tensor>;
  /** From `optimizer.state()`; pass the loaded one to `optimizer.loadState`. */
  optimizer?: OptimizerState;
  /** From `schedule.state()` (non-finite numbers such as an initial best of Infinity are kept). */
  schedule?: Record<string, number>;
  /** Completed epochs (a non-negative integer). */
  epoch: number;
  /**
   * Anything else worth keeping (metrics history, the data split seed, ...). Must be plain JSON,
   * checked when saving; typed as unknown so typed interfaces can be passed, and because a loaded
   * value comes from a file and deserves checking before use.
   */
  extra?: unknown;
}

/**
 * Bounds for the numbers of a checkpoint, to catch corrupt or forged metadata before it reaches an
 * optimizer. 2^40 steps is a trillion updates, far past any real run; a learning rate above 10^6
 * is garbage for every optimizer Kiln has (and 0 is allowed: a schedule may end there).
 */
export const MAX_CHECKPOINT_STEPS = 2 ** 40;
export const MAX_LEARNING_RATE = 1e6;

/** Returns a problem with an optimizer state's numbers ({kind, step, lr, steps?}), or null. */
function optimizerNumbersProblem(o: { kind?: unknown; step?: unknown; lr?: unknown; steps?: unknown }): string | null {
  const show = (v: unknown) => (typeof v === 'number' ? String(v) : JSON.stringify(v));
  if (typeof o.kind !== 'string' || o.kind.length === 0 || o.kind.length > 100) return `kind should be the optimizer's name, got ${JSON.stringify(o.kind)}`;
  const isStep = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= MAX_CHECKPOINT_STEPS;
  if (!isStep(o.step)) return `step should be an integer from 0 to 2^40, got ${show(o.step)}`;
  if (typeof o.lr !== 'number' || !(o.lr >= 0 && o.lr <= MAX_LEARNING_RATE)) return `lr should be a number from 0 to ${MAX_LEARNING_RATE}, got ${show(o.lr)}`;
  if (o.steps !== undefined) {
    if (!Array.isArray(o.steps)) return `steps should be an array of per-parameter step counts, got ${JSON.stringify(o.steps)}`;
    const i = o.steps.findIndex((v) => !isStep(v));
    if (i >= 0) return `steps[${i}] should be an integer from 0 to 2^40, got ${show(o.steps[i])}`;
  }
  return null;
}

/** JSON has no Infinity or NaN, but a schedule's state can hold them (ReduceLROnPlateau's first best). */
function encodeNumbers(values: Record<string, number>, op: string): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const [k, v] of Object.entries(values)) {
    if (typeof v !== 'number') throw new Error(`${op}: schedule.${k} must be a number, got ${typeof v}`);
    out[k] = Number.isFinite(v) ? v : String(v);
  }
  return out;
}

function checkInput(op: string, c: Checkpoint): void {
  if (typeof c !== 'object' || c === null) throw new Error(`${op}: expected { model, optimizer?, schedule?, epoch, extra? }, got ${c}`);
  if (!Number.isSafeInteger(c.epoch) || c.epoch < 0) throw new Error(`${op}: epoch must be a non-negative integer, got ${c.epoch}`);
  if (c.epoch > MAX_CHECKPOINT_STEPS) throw new Error(`${op}: epoch ${c.epoch} is absurd (more than 2^40)`);
  if (typeof c.model !== 'object' || c.model === null) throw new Error(`${op}: model must be a state dict (names to tensors), got ${c.model}`);
  if (c.extra !== undefined) checkJsonable(c.extra, op, 'extra');
  const o = c.optimizer;
  if (o === undefined) return;
  if (typeof o !== 'object' || o === null || !Array.isArray(o.slots)) {
    throw new Error(`${op}: optimizer must be an OptimizerState { kind, step, lr, slots } from optimizer.state()`);
  }
  const problem = optimizerNumbersProblem(o);
  if (problem !== null) throw new Error(`${op}: optimizer.${problem}`);
  o.slots.forEach((s, i) => {
    if (!Array.isArray(s) || !s.every((t) => t instanceof Tensor)) throw new Error(`${op}: optimizer.slots[${i}] must be an array of tensors`);
  });
}

/**
 * Saves a training checkpoint to `file` (one safetensors file), atomically. The tensors are read,
 * not taken: the caller keeps owning them.
 */
export function saveCheckpoint(file: string, checkpoint: Checkpoint): void {
  const op = 'saveCheckpoint';
  checkInput(op, checkpoint);
  const { model, optimizer, schedule, epoch, extra } = checkpoint;
  const tensors: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(model)) tensors[`model.${name}`] = t;
  const metadata: Record<string, string> = {
    'kiln.format': FORMAT_NAME,
    'kiln.format_version': String(CHECKPOINT_FORMAT_VERSION),
    'kiln.version': kilnVersion(),
    epoch: JSON.stringify(epoch),
  };
  if (optimizer !== undefined) {
    const { slots, ...numbers } = optimizer;
    slots.forEach((ts, i) => ts.forEach((t, j) => (tensors[`optimizer.${i}.${j}`] = t)));
    // Every field but the tensors is kept, so fields OptimizerState gains later survive a checkpoint.
    checkJsonable(numbers, op, 'optimizer');
    metadata.optimizer = JSON.stringify({ ...numbers, slots: slots.map((ts) => ts.length) });
  }
  if (schedule !== undefined) metadata.schedule = JSON.stringify(encodeNumbers(schedule, op));
  if (extra !== undefined) metadata.extra = JSON.stringify(extra);
  writeFileAtomic(file, encodeWith(op, tensors, metadata, { checksum: true }));
}

/** Parses one JSON metadata entry; `bad` reports which key is wrong. */
function parseEntry(metadata: Record<string, string>, key: string, bad: (problem: string) => never): unknown {
  try {
    return JSON.parse(metadata[key]);
  } catch (e) {
    return bad(`metadata '${key}' is not valid JSON (${(e as Error).message})`);
  }
}

function readOptimizer(meta: unknown, tensors: Record<string, Tensor>, taken: Set<string>, bad: (p: string) => never): OptimizerState {
  const m = meta as { kind?: unknown; step?: unknown; lr?: unknown; slots?: unknown };
  if (typeof m !== 'object' || m === null || Array.isArray(m) || !Array.isArray(m.slots)) {
    bad(`metadata 'optimizer' should be {kind, step, lr, slots}, got ${JSON.stringify(meta)?.slice(0, 200)}`);
  }
  const problem = optimizerNumbersProblem(m);
  if (problem !== null) bad(`metadata 'optimizer': ${problem}`);
  const { slots: counts, ...numbers } = m as { slots: unknown[] };
  // A forged count (10^15) must not become an array of that length: the loop stops at the first
  // missing tensor, so it runs at most as often as the file has tensors.
  const slots = counts.map((n, i) => {
    if (!Number.isSafeInteger(n) || (n as number) < 0) bad(`metadata 'optimizer': slots[${i}] should be a count, got ${JSON.stringify(n)}`);
    const state: Tensor[] = [];
    for (let j = 0; j < (n as number); j++) {
      const name = `optimizer.${i}.${j}`;
      if (!Object.prototype.hasOwnProperty.call(tensors, name)) bad(`the optimizer state tensor '${name}' is missing (metadata 'optimizer' says parameter ${i} has ${n})`);
      taken.add(name);
      state.push(tensors[name]);
    }
    return state;
  });
  return { ...(numbers as Omit<OptimizerState, 'slots'>), slots };
}

function readSchedule(meta: unknown, bad: (p: string) => never): Record<string, number> {
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) bad(`metadata 'schedule' should be an object, got ${JSON.stringify(meta)}`);
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(meta as object)) {
    if (typeof v === 'number') out[k] = v;
    else if (v === 'Infinity' || v === '-Infinity' || v === 'NaN') out[k] = Number(v);
    else bad(`metadata 'schedule': '${k}' should be a number, got ${JSON.stringify(v)}`);
  }
  return out;
}

/** Frees every tensor a loaded checkpoint holds (model and optimizer state). */
export function disposeCheckpoint(checkpoint: Checkpoint): void {
  dispose(Object.values(checkpoint.model));
  if (checkpoint.optimizer !== undefined) dispose(checkpoint.optimizer.slots);
}

/**
 * Loads a checkpoint written by saveCheckpoint. Throws a message naming the file and the problem if
 * it is missing, corrupt, incomplete or not a Kiln checkpoint; no tensors are left behind when it
 * throws. The caller owns the returned tensors: `disposeCheckpoint(checkpoint)` frees them all.
 */
export function loadCheckpoint(file: string): Checkpoint {
  const op = 'loadCheckpoint';
  const { tensors, metadata } = decodeWith(`${op}: '${file}'`, readFileOrThrow(op, file));
  const bad = (problem: string): never => {
    throw new Error(`${op}: '${file}' is not a usable Kiln checkpoint: ${problem}`);
  };
  try {
    if (metadata['kiln.format'] !== FORMAT_NAME) {
      bad(`its metadata has no "kiln.format": "${FORMAT_NAME}" (got ${JSON.stringify(metadata['kiln.format'])}); for plain tensors use loadTensors`);
    }
    const version = Number(metadata['kiln.format_version']);
    if (!Number.isInteger(version) || version < 1) bad(`metadata 'kiln.format_version' should be a positive integer, got ${JSON.stringify(metadata['kiln.format_version'])}`);
    if (version > CHECKPOINT_FORMAT_VERSION) {
      bad(`it has format version ${version} (written by Kiln ${metadata['kiln.version']}); this Kiln reads up to version ${CHECKPOINT_FORMAT_VERSION}: upgrade Kiln`);
    }
    if (metadata.epoch === undefined) bad("metadata 'epoch' is missing");
    const epoch = parseEntry(metadata, 'epoch', bad);
    if (!Number.isSafeInteger(epoch) || (epoch as number) < 0) bad(`metadata 'epoch' should be a non-negative integer, got ${metadata.epoch}`);
    if ((epoch as number) > MAX_CHECKPOINT_STEPS) bad(`metadata 'epoch' is ${metadata.epoch}, an absurd count (more than 2^40)`);

    const out: Checkpoint = { model: {}, epoch: epoch as number };
    const taken = new Set<string>();
    if (metadata.optimizer !== undefined) out.optimizer = readOptimizer(parseEntry(metadata, 'optimizer', bad), tensors, taken, bad);
    if (metadata.schedule !== undefined) out.schedule = readSchedule(parseEntry(metadata, 'schedule', bad), bad);
    if (metadata.extra !== undefined) out.extra = parseEntry(metadata, 'extra', bad);
    for (const [name, t] of Object.entries(tensors)) {
      if (name.startsWith('model.')) {
        Object.defineProperty(out.model, name.slice('model.'.length), { value: t, enumerable: true, writable: true, configurable: true });
      } else if (!taken.has(name)) {
        bad(`it holds the tensor '${name}', which is neither 'model.<name>' nor a listed optimizer state tensor`);
      }
    }
    return out;
  } catch (e) {
    dispose(tensors);
    throw e;
  }
}
