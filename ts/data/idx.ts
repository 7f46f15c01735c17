/**
 * The IDX format (the one MNIST ships in): two zero bytes, a type byte, a dimension count, one
 * big-endian uint32 size per dimension, then the elements row-major, big-endian. The reader checks
 * every part of that layout and the exact file length, so a truncated download or a renamed file
 * fails here with the file's name instead of producing garbage images later.
 */

/** Element types IDX defines, by their type byte. */
export type IdxDType = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';

/** The typed array an IDX file's elements decode to, one per IDX element type. */
export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

/** A decoded IDX file: element type, shape and elements. */
export interface IdxArray {
  dtype: IdxDType;
  /** Dimensions, outermost first (for MNIST images: [count, rows, cols]). */
  shape: number[];
  /** The elements in row-major order, in native byte order. uint8 data is a view on the file bytes (no copy). */
  data: IdxData;
}

const TYPES: Record<number, { dtype: IdxDType; bytes: number }> = {
  0x08: { dtype: 'uint8', bytes: 1 },
  0x09: { dtype: 'int8', bytes: 1 },
  0x0b: { dtype: 'int16', bytes: 2 },
  0x0c: { dtype: 'int32', bytes: 4 },
  0x0d: { dtype: 'float32', bytes: 4 },
  0x0e: { dtype: 'float64', bytes: 8 },
};

const hex = (v: number, width = 2) => `0x${v.toString(16).padStart(width, '0')}`;

/** What an IDX header declares (element type, shape, sizes). */
export interface IdxHeader {
  type: { dtype: IdxDType; bytes: number };
  shape: number[];
  count: number;
  headerBytes: number;
  /** The exact length of a file with this header: header plus elements. */
  expected: number;
}

/** Reads the magic number and dimensions; `bytes` may be just the start of the file. */
export function readHeader(bytes: Uint8Array, fail: (why: string) => never): IdxHeader {
  if (bytes.length < 4) fail(`it has ${bytes.length} bytes, fewer than the 4-byte magic number`);
  const magic = (bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3];
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    fail(`the magic number is ${hex(magic >>> 0, 8)}; IDX files start with two zero bytes, a type byte and a dimension count (MNIST images: 0x00000803)`);
  }
  const type = TYPES[bytes[2]];
  if (type === undefined) fail(`unknown type byte ${hex(bytes[2])} (expected 0x08 uint8, 0x09 int8, 0x0b int16, 0x0c int32, 0x0d float32 or 0x0e float64)`);
  const rank = bytes[3];
  if (rank === 0) fail('the dimension count is 0');
  const headerBytes = 4 + 4 * rank;
  if (bytes.length < headerBytes) fail(`it has ${bytes.length} bytes but its header declares ${rank} dimensions (${headerBytes} header bytes): the file is truncated`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape: number[] = [];
  let count = 1;
  for (let i = 0; i < rank; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    shape.push(d);
    count *= d;
  }
  return { type, shape, count, headerBytes, expected: headerBytes + count * type.bytes };
}

/**
 * Decompresses gzipped IDX bytes synchronously. Node has one (idx-file.ts: zlib, bounded by the
 * size the header declares); browsers only have the asynchronous DecompressionStream, so there the
 * caller decompresses first. `name` goes into its errors.
 */
export type Gunzip = (bytes: Uint8Array, name: string) => Uint8Array;

/**
 * Decodes IDX bytes; `name` (a file name) is put in every error. Gzipped input (the form the
 * files are usually downloaded in) goes through `gunzip` first, or is refused with the way out
 * when there is none (in a browser).
 */
export function decodeIdx(bytes: Uint8Array, name: string, gunzip: Gunzip | null): IdxArray {
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    if (gunzip === null) {
      throw new Error(
        `parseIdx: '${name}' is gzip-compressed; in a browser decompress it first, e.g. ` +
          "new Uint8Array(await new Response(blob.stream().pipeThrough(new DecompressionStream('gzip'))).arrayBuffer())",
      );
    }
    bytes = gunzip(bytes, name);
  }
  const fail = (why: string): never => {
    throw new Error(`parseIdx: '${name}' is not a valid IDX file: ${why}`);
  };
  const { type, shape, count, headerBytes, expected } = readHeader(bytes, fail);
  const what = `shape [${shape.join(', ')}] of ${type.dtype} needs ${expected} bytes (${headerBytes} header + ${count * type.bytes} data)`;
  if (bytes.length < expected) fail(`it has ${bytes.length} bytes, but its ${what}: the file is truncated`);
  if (bytes.length > expected) fail(`it has ${bytes.length} bytes, but its ${what}: ${bytes.length - expected} unexpected trailing bytes (corrupt, or not the file it is named as)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { dtype: type.dtype, shape, data: decode(type.dtype, view, headerBytes, count) };
}

/** The elements after the header, converted from big-endian where they are wider than a byte. */
function decode(dtype: IdxDType, view: DataView, offset: number, count: number): IdxData {
  const at = view.byteOffset + offset;
  switch (dtype) {
    case 'uint8':
      return new Uint8Array(view.buffer, at, count);
    case 'int8':
      return new Int8Array(view.buffer, at, count);
    case 'int16': {
      const out = new Int16Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt16(offset + 2 * i, false);
      return out;
    }
    case 'int32': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(offset + 4 * i, false);
      return out;
    }
    case 'float32': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(offset + 4 * i, false);
      return out;
    }
    case 'float64': {
      const out = new Float64Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(offset + 8 * i, false);
      return out;
    }
  }
}

/**
 * Decodes IDX bytes (the browser's version: gzipped bytes must be decompressed first; the Node
 * entry's parseIdx also takes them gzipped). `name` (a file name) is put in every error.
 * bytes -> { dtype, shape: [d0, ..., dk], data: [d0 * ... * dk] }
 */
export function parseIdx(bytes: Uint8Array, name = 'IDX data'): IdxArray {
  return decodeIdx(bytes, name, null);
}
