/**
 * Safetensors on disk (Node only). Every write is atomic: the bytes go to a temporary file in the
 * target's directory, are flushed to disk, and only then renamed over the target. A crash or a full
 * disk mid-write leaves the previous file untouched, never a half-written one; the temporary file a
 * crash leaves behind is removed by the next write of the same target (see stale.ts).
 */

import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Tensor } from '../tensor.js';
import { decodeWith, encodeWith, type DecodedSafetensors } from './safetensors.js';
import type { StorageOptions } from './safetensors-dtypes.js';
import { readRegularFile } from './read-file.js';
import { removeStaleTemporaries, temporaryName } from './stale.js';

/** Flushes a directory entry (the rename) to disk; not possible on every platform, so best effort. */
export function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Windows cannot open directories; the rename itself is still atomic there.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Writes `bytes` to `target` atomically: either the whole new content is there afterwards or, if
 * anything fails (no space, no permission, a crash), the old file is unchanged. The temporary file
 * is created next to the target so the final rename never crosses file systems.
 */
export function writeFileAtomic(target: string, bytes: Uint8Array): void {
  const dir = path.dirname(path.resolve(target));
  if (!fs.existsSync(dir)) throw new Error(`writeFileAtomic: cannot write '${target}': the directory '${dir}' does not exist`);
  // The random part keeps two writers (processes or calls) from sharing a temporary file.
  const temp = path.join(dir, temporaryName(path.basename(target), randomBytes(6).toString('hex')));
  removeStaleTemporaries(dir, path.basename(target));
  let fd: number | undefined;
  try {
    fd = fs.openSync(temp, 'wx');
    for (let done = 0; done < bytes.length; ) done += fs.writeSync(fd, bytes, done, bytes.length - done);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(temp, target);
  } catch (e) {
    if (fd !== undefined) {
      try { fs.closeSync(fd); } catch { /* already failing; report the first error */ }
    }
    try { fs.unlinkSync(temp); } catch { /* it may never have been created */ }
    throw new Error(`writeFileAtomic: could not write '${target}' (${(e as Error).message}); any previous file there is unchanged`, { cause: e });
  }
  syncDirectory(dir);
}

/** Reads a whole regular file of bounded size, with a message that says which file and why not. */
export function readFileOrThrow(op: string, file: string, maxBytes?: number): Uint8Array {
  return readRegularFile(op, file, maxBytes);
}

/**
 * Saves named tensors (and optional string metadata) as a safetensors file at `file`, atomically.
 * The file loads with `loadTensors` and with Python's `safetensors.numpy.load_file`.
 * `options.dtype: 'F16' | 'BF16' | 'F64'` stores the float32 tensors narrower or wider, and
 * `options.dtypes` per tensor name (docs/weights.md).
 */
export function saveTensors(file: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>, options?: StorageOptions): void {
  writeFileAtomic(file, encodeWith('saveTensors', tensors, metadata, options));
}

/**
 * Loads a safetensors file of any dtype in docs/weights.md's table (F16, BF16, F64 become float32;
 * I64 and the other integers int32). Throws a message naming the file and the problem if it
 * is missing, truncated or corrupt. The caller owns the tensors: `kiln.dispose(result.tensors)`.
 */
export function loadTensors(file: string): DecodedSafetensors {
  return decodeWith(`loadTensors: '${file}'`, readFileOrThrow('loadTensors', file));
}
