/**
 * The safetensors format (Hugging Face), in memory: named tensors to bytes and back. Files written
 * here load with the Python `safetensors` package (numpy, torch) and vice versa. No file system
 * access, so this module also works in browsers; files.ts adds the disk side.
 *
 * Layout choice: tensors are placed by dtype (F32, then I32, I8, BOOL), then by name, exactly as
 * the reference writer does, so the bytes match it and do not depend on the key order of `tensors`.
 * Wider types first, with the header padded to a multiple of 8, puts every tensor at an offset that
 * is a multiple of its element size, so readers (this one included) can view the data in place
 * instead of copying it.
 */

import { tensor as makeTensor } from '../ops/creation.js';
import { Tensor, type TypedArray } from '../tensor.js';
import { crc32Hex } from '../checksum.js';
import { METADATA_KEY, parseHeader, type Fail, type TensorEntry } from './safetensors-header.js';
import { STORAGE, checkStorageOptions, convertFromStorage, convertToStorage, isNativeStorage, storageFor, type StorageOptions } from './safetensors-dtypes.js';

/** What `decodeSafetensors` returns. */
export interface DecodedSafetensors {
  tensors: Record<string, Tensor>;
  /** The file's `__metadata__` ({} if it has none). */
  metadata: Record<string, string>;
}

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Sets obj[key] as an own property even for keys like '__proto__' (a file may name a tensor anything). */
function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * The metadata key under which Kiln's own formats (saved models, checkpoints) keep the CRC-32 of the
 * data section, so that corrupted weights are detected on load. Files without it load unchecked.
 */
export const CHECKSUM_KEY = 'kiln.data_crc32';

/** How `encodeWith` stores tensors, and whether it records the data section's CRC-32 under CHECKSUM_KEY. */
export interface EncodeOptions extends StorageOptions {
  checksum?: boolean;
}

/** Internal: `encodeSafetensors` with the calling function's name in error messages. */
export function encodeWith(op: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>, options: EncodeOptions = {}): Uint8Array {
  if (typeof tensors !== 'object' || tensors === null) throw new Error(`${op}: expected an object mapping names to tensors, got ${tensors}`);
  if (metadata !== undefined) {
    if (typeof metadata !== 'object' || metadata === null) throw new Error(`${op}: metadata must be an object of strings, got ${metadata}`);
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`${op}: metadata values must be strings, but '${k}' is ${typeof v}; use JSON.stringify for structured values`);
    }
  }
  const items = Object.entries(tensors).map(([name, t]) => {
    if (name === '') throw new Error(`${op}: a tensor has an empty name; safetensors needs non-empty names`);
    if (name === METADATA_KEY) throw new Error(`${op}: '${METADATA_KEY}' is reserved by the format and cannot name a tensor`);
    if (!(t instanceof Tensor)) throw new Error(`${op}: '${name}' is not a Tensor (got ${t === null ? 'null' : typeof t})`);
    if (t.isDisposed) throw new Error(`${op}: tensor '${name}' is disposed; save it before disposing it`);
    const storage = storageFor(op, name, t.dtype, options);
    const data = isNativeStorage(storage) ? t.dataSync() : convertToStorage(t.dataSync(), storage, name, (p) => { throw new Error(`${op}: ${p}`); });
    return { name, shape: [...t.shape], info: { name: storage, ...STORAGE[storage] }, data };
  });
  checkStorageOptions(op, items.map((i) => i.name), options);
  items.sort((a, b) => b.info.rank - a.info.rank || compareCodePoints(a.name, b.name));

  let offset = 0;
  const placed = items.map((item) => {
    const begin = offset;
    offset += item.data.byteLength;
    return { ...item, begin, end: offset };
  });
  if (options.checksum) {
    metadata = { ...metadata, [CHECKSUM_KEY]: crc32Hex(...placed.map((item) => littleEndianBytes(item.data))) };
  }

  // Built by hand, not with JSON.stringify on an object: JS objects put integer-like keys ('0', '10')
  // first, and the header should list tensors in the order their data is laid out.
  const parts: string[] = [];
  if (metadata !== undefined && Object.keys(metadata).length > 0) parts.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`);
  for (const item of placed) {
    parts.push(`${JSON.stringify(item.name)}:{"dtype":"${item.info.name}","shape":[${item.shape.join(',')}],"data_offsets":[${item.begin},${item.end}]}`);
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const headerSize = Math.ceil(json.length / 8) * 8;

  const out = new Uint8Array(8 + headerSize + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerSize), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerSize); // the format pads the header with spaces
  for (const item of placed) out.set(littleEndianBytes(item.data), 8 + headerSize + item.begin);
  return out;
}

/**
 * Orders strings by Unicode code point, which is the UTF-8 byte order the reference writer sorts by.
 * JS `<` compares UTF-16 code units, which differs for names mixing characters above U+FFFF with
 * ones in U+E000..U+FFFF.
 */
function compareCodePoints(a: string, b: string): number {
  const x = a[Symbol.iterator]();
  const y = b[Symbol.iterator]();
  for (;;) {
    const p = x.next();
    const q = y.next();
    if (p.done || q.done) return p.done && q.done ? 0 : p.done ? -1 : 1;
    const d = p.value.codePointAt(0)! - q.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

/** The bytes of `data` in little-endian order, whatever the host: a view where possible, else a copy. */
function littleEndianBytes(data: ArrayBufferView): Uint8Array {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (HOST_IS_LITTLE_ENDIAN || data instanceof Uint8Array || data instanceof Int8Array) return bytes;
  const out = new Uint8Array(data.byteLength);
  const view = new DataView(out.buffer);
  if (data instanceof Float32Array) data.forEach((v, i) => view.setFloat32(i * 4, v, true));
  else if (data instanceof Float64Array) data.forEach((v, i) => view.setFloat64(i * 8, v, true));
  else if (data instanceof Uint16Array) data.forEach((v, i) => view.setUint16(i * 2, v, true));
  else if (data instanceof BigInt64Array) data.forEach((v, i) => view.setBigInt64(i * 8, v, true));
  else (data as Int32Array).forEach((v, i) => view.setInt32(i * 4, v, true));
  return out;
}

/**
 * Serializes named tensors (float32, int32, int8, bool; any shape, including scalars and size 0) and
 * optional string metadata to the bytes of a safetensors file. `options.dtype` stores float32
 * tensors as F16, BF16 (round to nearest even) or F64 instead of F32; `options.dtypes` sets the
 * storage per tensor name (e.g. int32 as I64). See docs/weights.md.
 */
export function encodeSafetensors(tensors: Record<string, Tensor>, metadata?: Record<string, string>, options?: StorageOptions): Uint8Array {
  return encodeWith('encodeSafetensors', tensors, metadata, options);
}

/** The elements of one entry as a typed array: a view when aligned and little-endian, else a copy. */
function readElements(bytes: Uint8Array, at: number, entry: TensorEntry, fail: Fail): TypedArray {
  const byteLength = entry.end - entry.begin;
  if (entry.dtype === 'int8') {
    // Bytes need no alignment or byte order: a view (creating the tensor copies it).
    return new Int8Array(bytes.buffer, bytes.byteOffset + at, byteLength);
  }
  if (entry.dtype === 'bool') {
    const data = bytes.subarray(at, at + byteLength);
    const bad = data.findIndex((v) => v > 1);
    if (bad >= 0) fail(`tensor '${entry.name}' is BOOL but element ${bad} is the byte ${data[bad]} (only 0 and 1 are valid)`);
    return data;
  }
  const n = byteLength / 4;
  const Ctor = entry.dtype === 'float32' ? Float32Array : Int32Array;
  const absolute = bytes.byteOffset + at;
  if (HOST_IS_LITTLE_ENDIAN) {
    if (absolute % 4 === 0) return new Ctor(bytes.buffer as ArrayBuffer, absolute, n);
    // The format does not require aligned offsets: copy into a fresh (aligned) buffer. Not
    // bytes.slice(): on a Node Buffer that is a view into the same, still unaligned, memory.
    const copy = new Uint8Array(byteLength);
    copy.set(bytes.subarray(at, at + byteLength));
    return new Ctor(copy.buffer);
  }
  const view = new DataView(bytes.buffer, absolute, byteLength);
  const out = new Ctor(n);
  for (let i = 0; i < n; i++) out[i] = entry.dtype === 'float32' ? view.getFloat32(i * 4, true) : view.getInt32(i * 4, true);
  return out;
}

/** Internal: `decodeSafetensors` whose errors start with `context` (e.g. the op and file name). */
export function decodeWith(context: string, bytes: Uint8Array): DecodedSafetensors {
  const fail: Fail = (problem) => {
    throw new Error(`${context} is not a valid safetensors file: ${problem}`);
  };
  if (!(bytes instanceof Uint8Array)) throw new Error(`${context}: expected a Uint8Array, got ${bytes === null ? 'null' : typeof bytes}`);
  const { entries, metadata, dataStart } = parseHeader(bytes, fail);
  const expected = metadata[CHECKSUM_KEY];
  if (expected !== undefined) {
    const actual = crc32Hex(bytes.subarray(dataStart));
    if (actual !== expected.toLowerCase()) {
      fail(`the data section's CRC-32 is ${actual} but the file's metadata records ${expected}: the weights are corrupted (a damaged copy or disk)`);
    }
  }
  const tensors: Record<string, Tensor> = {};
  const made: Tensor[] = [];
  try {
    // Creating a tensor copies the elements into the backend, so the views above never outlive this call.
    for (const e of entries) {
      const at = dataStart + e.begin;
      const elements = isNativeStorage(e.stored) ? readElements(bytes, at, e, fail) : convertFromStorage(bytes, at, (e.end - e.begin) / STORAGE[e.stored].bytes, e.stored, e.name, fail);
      const t = makeTensor(elements, e.shape, e.dtype);
      made.push(t);
      setOwn(tensors, e.name, t);
    }
  } catch (err) {
    for (const t of made) t.dispose();
    throw err;
  }
  return { tensors, metadata };
}

/**
 * Reads the bytes of a safetensors file. F32, F16, BF16 and F64 tensors load as float32; I32, I64,
 * U64, U32, I16, U16 and U8 as int32 (values outside int32 are an error, never wrapped); I8 as int8;
 * BOOL as bool (docs/weights.md has the table). Checks the whole file first
 * and throws a clear error, naming the tensor at fault, if it is truncated, corrupt or uses a dtype
 * Kiln cannot hold; no tensors are left behind when it throws. The caller owns (and disposes) the
 * returned tensors.
 */
export function decodeSafetensors(bytes: Uint8Array): DecodedSafetensors {
  return decodeWith('decodeSafetensors: the data', bytes);
}
