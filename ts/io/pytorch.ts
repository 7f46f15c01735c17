/**
 * PyTorch state dicts in and out of Kiln modules, by PyTorch's names (pytorch-names.ts has the
 * mapping per layer). No file system here, so this also works in browsers; hf-checkpoint.ts reads
 * and writes the files.
 *
 *   const { tensors } = kiln.io.loadTensors('model.safetensors');   // saved from PyTorch
 *   kiln.io.loadPyTorchStateDict(model, tensors);                     // names, shapes checked first
 *   kiln.dispose(tensors);
 *
 *   const state = kiln.io.pytorchStateDict(model);                    // PyTorch's names; caller owns
 */

import { Tensor } from '../tensor.js';
import { dispose } from '../engine.js';
import { noGrad } from '../autograd.js';
import { concat, split } from '../ops/shape.js';
import { tensor as makeTensor } from '../ops/creation.js';
import type { AnyModule, LoadStateDictResult } from '../nn/module.js';
import { torchPlan, type TorchEntry } from './pytorch-names.js';
import { listed } from './compat.js';

/** How strictly a PyTorch state dict must match the module when it is loaded into it. */
export interface LoadPyTorchOptions {
  /**
   * Throw when a key is missing from the state dict or unknown to the module (default true). A key
   * whose shape or dtype differs always throws.
   */
  strict?: boolean;
}

const describe = (dtype: string, shape: readonly number[]) => `${dtype} [${shape.join(', ')}]`;

/** The dtype and shape the PyTorch tensor of `entry` has (as Kiln loads it), from the module's tensors. */
function expectedOf(entry: TorchEntry, state: Record<string, Tensor>): { dtype: string; shape: number[] } {
  if (entry.counter !== undefined) return { dtype: 'int32', shape: [] };
  const parts = entry.kiln.map((n) => state[n]);
  const shape = [...parts[0].shape];
  shape[0] = parts.reduce((sum, t) => sum + t.shape[0], 0);
  return { dtype: parts[0].dtype, shape };
}

/**
 * The module's parameters and buffers under PyTorch's names and layouts, ready for
 * `torch.nn.Module.load_state_dict` (after saving, e.g. with `savePyTorchWeights`). BatchNorm adds
 * `num_batches_tracked` (int32 scalar here; savePyTorchWeights writes it as int64, as PyTorch does);
 * MultiHeadAttention's q/k/v projections are stacked into `in_proj_weight`/`in_proj_bias`. The
 * caller owns every returned tensor (they share storage with the module where no copy is needed:
 * dispose them, not the module's).
 */
export function pytorchStateDict(module: AnyModule): Record<string, Tensor> {
  const state = module.stateDict();
  const out: Record<string, Tensor> = {};
  try {
    for (const entry of torchPlan(module)) {
      const value = entry.counter !== undefined
        ? makeTensor(Int32Array.of(entry.counter.numBatchesTracked), [], 'int32')
        : entry.kiln.length === 1 ? state[entry.kiln[0]].detach() : noGrad(() => concat(entry.kiln.map((n) => state[n]), 0));
      Object.defineProperty(out, entry.torch, { value, enumerable: true, writable: true, configurable: true });
    }
  } catch (e) {
    dispose(out);
    throw e;
  }
  return out;
}

/** PyTorch names of `module`'s num_batches_tracked counters (stored as int64 by savePyTorchWeights). */
export function counterNames(module: AnyModule): string[] {
  return torchPlan(module).filter((e) => e.counter !== undefined).map((e) => e.torch);
}

/**
 * Loads a PyTorch state dict (PyTorch's names and layouts, e.g. from a safetensors file saved by
 * `safetensors.torch.save_file(model.state_dict())`) into `module`, in place. Every name, shape and
 * dtype is checked before anything is written; the error lists every missing, unexpected and
 * mismatched key with its shape. Returns the missing and unexpected keys (PyTorch names) when
 * `strict` is false. The caller keeps ownership of `state`.
 */
export function loadPyTorchStateDict(module: AnyModule, state: Record<string, Tensor>, options: LoadPyTorchOptions = {}): LoadStateDictResult {
  return loadPyTorchWith('loadPyTorchStateDict', module, state, options);
}

/** Internal: loadPyTorchStateDict with `op` (the caller's name, maybe with the file) starting its errors. */
export function loadPyTorchWith(op: string, module: AnyModule, state: Record<string, Tensor>, options: LoadPyTorchOptions = {}): LoadStateDictResult {
  if (typeof state !== 'object' || state === null) throw new Error(`${op}: expected an object mapping PyTorch names to tensors, got ${state}`);
  const plan = torchPlan(module);
  const own = module.stateDict();
  const known = new Set(plan.map((e) => e.torch));
  const missing: string[] = [];
  const missingLines: string[] = [];
  const mismatched: string[] = [];
  for (const entry of plan) {
    const want = expectedOf(entry, own);
    if (!Object.hasOwn(state, entry.torch)) {
      missing.push(entry.torch);
      missingLines.push(`${entry.torch}: ${describe(want.dtype, want.shape)}`);
      continue;
    }
    const value = state[entry.torch];
    if (!(value instanceof Tensor)) mismatched.push(`${entry.torch}: not a Tensor (got ${value === null ? 'null' : typeof value})`);
    else if (value.isDisposed) mismatched.push(`${entry.torch}: the tensor is disposed`);
    else if (describe(value.dtype, value.shape) !== describe(want.dtype, want.shape)) {
      mismatched.push(`${entry.torch}: module ${describe(want.dtype, want.shape)}, state dict ${describe(value.dtype, value.shape)}`);
    }
  }
  const unexpected = Object.keys(state).filter((k) => !known.has(k));
  const strict = options.strict ?? true;
  if (mismatched.length > 0 || (strict && missing.length + unexpected.length > 0)) {
    const unexpectedLines = unexpected.map((k) => (state[k] instanceof Tensor && !state[k].isDisposed ? `${k}: ${describe(state[k].dtype, state[k].shape)}` : k));
    throw new Error(
      `${op}: the state dict does not match ${module.constructor.name}; nothing was loaded` +
        listed('missing from the state dict', strict ? missingLines : [], Infinity) +
        listed('unexpected in the state dict', strict ? unexpectedLines : [], Infinity) +
        listed('shape or dtype mismatch', mismatched, Infinity) +
        (strict ? '' : '\n  (missing and unexpected keys are allowed with strict: false, mismatched ones never)'),
    );
  }

  const kilnState: Record<string, Tensor> = {};
  const made: Tensor[] = [];
  try {
    for (const entry of plan) {
      if (entry.counter !== undefined || !Object.hasOwn(state, entry.torch)) continue;
      const value = state[entry.torch];
      const parts = entry.kiln.length === 1 ? [value] : split(value, entry.kiln.map((n) => own[n].shape[0]), 0);
      if (parts.length > 1) made.push(...parts);
      entry.kiln.forEach((n, i) => (kilnState[n] = parts[i]));
    }
    module.loadStateDict(kilnState, { strict: false });
  } finally {
    dispose(made);
  }
  for (const entry of plan) {
    if (entry.counter !== undefined && Object.hasOwn(state, entry.torch)) entry.counter.numBatchesTracked = state[entry.torch].dataSync()[0];
  }
  return { missingKeys: missing, unexpectedKeys: unexpected };
}
