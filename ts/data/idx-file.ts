/**
 * IDX in Node: files read from disk, and gzipped bytes decompressed with zlib (the browser entry's
 * parseIdx, in idx.ts, has no synchronous gunzip).
 */

import fs from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { decodeIdx, type IdxArray } from './idx.js';

/**
 * Decodes IDX bytes, gzipped or not. `name` (a file name) is put in every error.
 * bytes -> { dtype, shape: [d0, ..., dk], data: [d0 * ... * dk] }
 */
export function parseIdx(bytes: Uint8Array, name = 'IDX data'): IdxArray {
  return decodeIdx(bytes, name, gunzipSync);
}

/**
 * Reads and validates an IDX file (optionally gzipped). Throws an error naming the file if it is
 * missing, truncated or not IDX. file -> { dtype, shape, data }
 */
export function readIdx(file: string): IdxArray {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'the file does not exist' : code === 'EISDIR' ? 'it is a directory' : (e as Error).message;
    throw new Error(`readIdx: cannot read '${file}': ${why}`, { cause: e });
  }
  return parseIdx(bytes, file);
}
