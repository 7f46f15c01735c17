/**
 * IDX in Node: files read from disk (regular files of bounded size only), and gzipped bytes
 * inflated with zlib no further than the header declares (the browser entry's parseIdx, in idx.ts,
 * has no synchronous gunzip).
 */

import { constants as zlibConstants, gunzipSync } from 'node:zlib';
import { MAX_FILE_BYTES, readRegularFile } from '../io/read-file.js';
import { decodeIdx, readHeader, type IdxArray, type IdxHeader } from './idx.js';

/** The largest IDX content Kiln inflates or reads: what one Node buffer can hold everywhere. */
const MAX_IDX_BYTES = MAX_FILE_BYTES;

/**
 * Inflates gzipped IDX without trusting it: first only the start, to read the header's declared
 * size, then the whole with that size as the output limit. A gzip bomb (a few KB inflating to GBs)
 * is rejected as soon as it inflates past what its header declares, not after filling memory.
 */
function gunzipBounded(bytes: Uint8Array, name: string): Uint8Array {
  const undecodable = (e: unknown): never => {
    throw new Error(`parseIdx: '${name}' is gzip-compressed but does not decompress (${(e as Error).message}); the download is probably truncated`, { cause: e });
  };
  const fail = (why: string): never => {
    throw new Error(`parseIdx: '${name}' is not a valid IDX file: ${why}`);
  };
  // The header is at most 1024 bytes; a few KB of compressed input yield it (unless the gzip header
  // carries a long file name or comment, hence the larger retries). Each prefix inflates to at most
  // about 1000 times its size, so this step stays small even for a bomb.
  let header: IdxHeader | undefined;
  for (const prefix of [4096, 65536, 1 << 20]) {
    let head: Uint8Array;
    try {
      head = gunzipSync(bytes.subarray(0, prefix), { finishFlush: zlibConstants.Z_SYNC_FLUSH });
    } catch (e) {
      return undecodable(e);
    }
    if (head.length >= 4 + 4 * (head[3] ?? 0)) {
      header = readHeader(head, fail);
      break;
    }
    if (prefix >= bytes.length) {
      // All of the input inflated to less than a header. A strict inflate says why (a truncated
      // stream); it cannot grow larger than what just inflated.
      try {
        header = readHeader(gunzipSync(bytes), fail);
      } catch (e) {
        if ((e as Error).message.startsWith('parseIdx:')) throw e;
        undecodable(e);
      }
      break;
    }
  }
  if (header === undefined) fail('its header does not inflate from the first 1 MB of compressed data');
  const { expected, shape, type } = header!;
  if (expected > MAX_IDX_BYTES) fail(`its header declares shape [${shape.join(', ')}] of ${type.dtype}, ${expected} bytes, more than the ${MAX_IDX_BYTES}-byte limit`);
  try {
    return gunzipSync(bytes, { maxOutputLength: expected + 1 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      fail(`it inflates to more than the ${expected} bytes its header declares (shape [${shape.join(', ')}] of ${type.dtype}); refusing to inflate further (a gzip bomb, or corrupt)`);
    }
    return undecodable(e);
  }
}

/**
 * Decodes IDX bytes, gzipped or not. `name` (a file name) is put in every error.
 * bytes -> { dtype, shape: [d0, ..., dk], data: [d0 * ... * dk] }
 */
export function parseIdx(bytes: Uint8Array, name = 'IDX data'): IdxArray {
  return decodeIdx(bytes, name, gunzipBounded);
}

/**
 * Reads and validates an IDX file (optionally gzipped). Throws an error naming the file if it is
 * missing, not a regular file, too large, truncated or not IDX. file -> { dtype, shape, data }
 */
export function readIdx(file: string): IdxArray {
  return parseIdx(readRegularFile('readIdx', file), file);
}
