/**
 * The safetensors dtypes Kiln reads and writes, and the conversions between them and Kiln's four
 * dtypes (float32, int32, int8, bool). PyTorch and Hugging Face checkpoints come in F16, BF16, F64
 * and I64 as often as in F32; this module is what lets them load.
 *
 * Policy (docs/weights.md has the table):
 *   F32, F16, BF16   -> float32, exact (every F16 and BF16 value is a float32)
 *   F64              -> float32, rounded to nearest; a finite value beyond float32's range is an error
 *   I32, I16, U16, U8 -> int32, exact
 *   I64, U64, U32    -> int32, exact; a value outside int32 is an error naming the tensor, never a wrap
 *   I8 -> int8, BOOL -> bool (as before)
 * Writing: float32 as F32 (default), F16, BF16 (round to nearest, ties to even) or F64; int32 as I32
 * or I64. A finite float32 too large for F16/BF16 is an error rather than a silent Infinity.
 *
 * Every conversion is one typed-array loop over the whole tensor (no per-element allocation); F16
 * reads go through a 65,536-entry table built once.
 */

import type { DType } from '../backends/backend.js';
import type { TypedArray } from '../tensor.js';

/** Thrown-message builder: `fail('...')` reports a problem with the file. */
export type Fail = (problem: string) => never;

/** The safetensors dtype names Kiln handles. */
export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'U64' | 'I32' | 'U32' | 'I16' | 'U16' | 'I8' | 'U8' | 'BOOL';

/** What a float32 tensor may be stored as (`dtype` option of the save functions). */
export type FloatStorage = 'F32' | 'F16' | 'BF16' | 'F64';

interface StorageInfo {
  /** Bytes per element. */
  bytes: number;
  /**
   * Place in the reference writer's layout order: it sorts tensors by its dtype enum, descending,
   * then by name. Following it makes Kiln's files byte-identical to the reference writer's.
   */
  rank: number;
  /** The Kiln dtype a tensor of this storage loads as. */
  loadsAs: DType;
}

export const STORAGE: Record<SafetensorsDtype, StorageInfo> = {
  BOOL: { bytes: 1, rank: 0, loadsAs: 'bool' },
  U8: { bytes: 1, rank: 1, loadsAs: 'int32' },
  I8: { bytes: 1, rank: 2, loadsAs: 'int8' },
  I16: { bytes: 2, rank: 3, loadsAs: 'int32' },
  U16: { bytes: 2, rank: 4, loadsAs: 'int32' },
  F16: { bytes: 2, rank: 5, loadsAs: 'float32' },
  BF16: { bytes: 2, rank: 6, loadsAs: 'float32' },
  I32: { bytes: 4, rank: 7, loadsAs: 'int32' },
  U32: { bytes: 4, rank: 8, loadsAs: 'int32' },
  F32: { bytes: 4, rank: 9, loadsAs: 'float32' },
  F64: { bytes: 8, rank: 10, loadsAs: 'float32' },
  I64: { bytes: 8, rank: 11, loadsAs: 'int32' },
  U64: { bytes: 8, rank: 12, loadsAs: 'int32' },
};

/** The storage each Kiln dtype is written as by default. */
export const DEFAULT_STORAGE: Record<DType, SafetensorsDtype> = { float32: 'F32', int32: 'I32', int8: 'I8', bool: 'BOOL' };

/** Which storages each Kiln dtype may be written as. */
const WRITABLE: Record<DType, readonly SafetensorsDtype[]> = {
  float32: ['F32', 'F16', 'BF16', 'F64'],
  int32: ['I32', 'I64'],
  int8: ['I8'],
  bool: ['BOOL'],
};

/** Storages whose bytes are Kiln's own element layout (read without conversion). */
export function isNativeStorage(s: SafetensorsDtype): boolean {
  return s === 'F32' || s === 'I32' || s === 'I8' || s === 'BOOL';
}

export function isSafetensorsDtype(s: string): s is SafetensorsDtype {
  return Object.hasOwn(STORAGE, s);
}

/** Names the format defines that Kiln does not read, so the message can say so instead of "corrupt". */
export const UNSUPPORTED_STORAGE = new Set(['C64', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'F6_E2M3', 'F6_E3M2', 'F4']);

export const READABLE_LIST = 'F64, F32, F16, BF16, I64, U64, I32, U32, I16, U16, I8, U8, BOOL';

/** Checks that a tensor of `dtype` may be stored as `storage`; returns an error message or null. */
export function storageProblem(dtype: DType, storage: string): string | null {
  if (!isSafetensorsDtype(storage)) return `'${storage}' is not a safetensors dtype Kiln writes (float32 tensors: F32, F16, BF16, F64; int32: I32, I64)`;
  if (!WRITABLE[dtype].includes(storage)) return `a ${dtype} tensor cannot be stored as ${storage} (it can be: ${WRITABLE[dtype].join(', ')})`;
  return null;
}

/** Options of the save functions that choose how tensors are stored. */
export interface StorageOptions {
  /** How float32 tensors are stored: 'F32' (default), 'F16' or 'BF16' (rounded to nearest, ties to even), 'F64'. */
  dtype?: FloatStorage;
  /** Storage per tensor name, overriding `dtype`: e.g. { 'bn.num_batches_tracked': 'I64' } for int32 -> I64. */
  dtypes?: Record<string, SafetensorsDtype>;
}

/** The storage of tensor `name` (of Kiln dtype `dtype`) under `options`; throws naming `op` if not allowed. */
export function storageFor(op: string, name: string, dtype: DType, options: StorageOptions = {}): SafetensorsDtype {
  const chosen = options.dtypes !== undefined && Object.hasOwn(options.dtypes, name) ? options.dtypes[name] : dtype === 'float32' ? (options.dtype ?? 'F32') : DEFAULT_STORAGE[dtype];
  const problem = storageProblem(dtype, chosen);
  if (problem !== null) throw new Error(`${op}: tensor '${name}': ${problem}`);
  return chosen;
}

/** Throws naming `op` unless every name in `options.dtypes` is one of `names` (a typo would otherwise be ignored). */
export function checkStorageOptions(op: string, names: string[], options: StorageOptions = {}): void {
  if (options.dtype !== undefined && !WRITABLE.float32.includes(options.dtype)) {
    throw new Error(`${op}: dtype must be one of ${WRITABLE.float32.join(', ')} (how float32 tensors are stored), got ${JSON.stringify(options.dtype)}`);
  }
  const known = new Set(names);
  const unknown = Object.keys(options.dtypes ?? {}).filter((n) => !known.has(n));
  if (unknown.length > 0) throw new Error(`${op}: dtypes names tensors that are not being saved: ${unknown.join(', ')}`);
}

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * The bytes [at, at + byteLength) as host-order elements of `elementBytes` each, in a buffer whose
 * offset is a multiple of the element size: a view when already so, else a copy (byte-swapped on
 * big-endian hosts).
 */
function hostOrder(bytes: Uint8Array, at: number, byteLength: number, elementBytes: number): { buffer: ArrayBuffer; offset: number } {
  const absolute = bytes.byteOffset + at;
  if (HOST_IS_LITTLE_ENDIAN && absolute % elementBytes === 0) return { buffer: bytes.buffer as ArrayBuffer, offset: absolute };
  const copy = bytes.slice(at, at + byteLength);
  if (!HOST_IS_LITTLE_ENDIAN) {
    for (let i = 0; i < copy.length; i += elementBytes) copy.subarray(i, i + elementBytes).reverse();
  }
  return { buffer: copy.buffer, offset: 0 };
}

let f16Table: Uint32Array | undefined;

/** float32 bit patterns of all 65,536 F16 values, NaN payloads kept (as numpy does). */
function halfToFloatTable(): Uint32Array {
  if (f16Table !== undefined) return f16Table;
  const bits = new Uint32Array(65536);
  const asFloat = new Float32Array(bits.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exponent = (h >> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    if (exponent === 0x1f) bits[h] = sign | 0x7f800000 | (mantissa << 13);
    else if (exponent !== 0) bits[h] = sign | ((exponent + 112) << 23) | (mantissa << 13);
    else {
      // Subnormal (or zero): mantissa · 2^-24, exact in float32; the sign is OR-ed in as bits so -0 stays -0.
      asFloat[h] = mantissa * 2 ** -24;
      bits[h] |= sign;
    }
  }
  f16Table = bits;
  return bits;
}

/**
 * Reads `count` elements stored as `storage` from `bytes` at `at` and converts them to the Kiln
 * dtype STORAGE[storage].loadsAs. `name` is the tensor's, for messages. Not for native storages.
 */
export function convertFromStorage(bytes: Uint8Array, at: number, count: number, storage: SafetensorsDtype, name: string, fail: Fail): TypedArray {
  const { buffer, offset } = hostOrder(bytes, at, count * STORAGE[storage].bytes, STORAGE[storage].bytes);
  const outOfInt32 = (i: number, value: string): never =>
    fail(`tensor '${name}' is ${storage} and element ${i} is ${value}, outside int32 (Kiln's integer dtype); Kiln refuses to wrap it`);
  switch (storage) {
    case 'F16': {
      const src = new Uint16Array(buffer, offset, count);
      const table = halfToFloatTable();
      const out = new Uint32Array(count);
      for (let i = 0; i < count; i++) out[i] = table[src[i]];
      return new Float32Array(out.buffer);
    }
    case 'BF16': {
      // BF16 is the top half of a float32: shifting the bits back is exact, NaN payloads included.
      const src = new Uint16Array(buffer, offset, count);
      const out = new Uint32Array(count);
      for (let i = 0; i < count; i++) out[i] = src[i] << 16;
      return new Float32Array(out.buffer);
    }
    case 'F64': {
      const src = new Float64Array(buffer, offset, count);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) {
        out[i] = src[i];
        if (out[i] === Infinity || out[i] === -Infinity) {
          if (Number.isFinite(src[i])) fail(`tensor '${name}' is F64 and element ${i} is ${src[i]}, beyond float32's range (±3.4028235e38); Kiln refuses to turn it into Infinity`);
        }
      }
      return out;
    }
    case 'I64':
    case 'U64': {
      // Each element as two 32-bit halves: it fits int32 exactly when the high half is the low
      // half's sign extension (I64), or zero with a non-negative low half (U64). No BigInt needed.
      const src = new Int32Array(buffer, offset, count * 2);
      const [lo, hi] = HOST_IS_LITTLE_ENDIAN ? [0, 1] : [1, 0];
      const out = new Int32Array(count);
      const signed = storage === 'I64';
      for (let i = 0; i < count; i++) {
        const low = src[2 * i + lo];
        const high = src[2 * i + hi];
        if (signed ? high !== low >> 31 : high !== 0 || low < 0) {
          const big = new DataView(buffer, offset + 8 * i, 8);
          outOfInt32(i, String(signed ? big.getBigInt64(0, HOST_IS_LITTLE_ENDIAN) : big.getBigUint64(0, HOST_IS_LITTLE_ENDIAN)));
        }
        out[i] = low;
      }
      return out;
    }
    case 'U32': {
      const src = new Uint32Array(buffer, offset, count);
      for (let i = 0; i < count; i++) if (src[i] > 0x7fffffff) outOfInt32(i, String(src[i]));
      return new Int32Array(src);
    }
    case 'I16':
      return Int32Array.from(new Int16Array(buffer, offset, count));
    case 'U16':
      return Int32Array.from(new Uint16Array(buffer, offset, count));
    case 'U8':
      return Int32Array.from(new Uint8Array(buffer, offset, count));
    default:
      throw new Error(`convertFromStorage: ${storage} is read without conversion`);
  }
}

/** The finite float32 element that overflows a narrower float, for the error message. */
function overflowMessage(storage: string, name: string, i: number, value: number, max: string): string {
  return `tensor '${name}' element ${i} is ${value}, beyond ${storage}'s largest value (${max}); Kiln refuses to store it as Infinity (use a wider dtype, e.g. ${storage === 'F16' ? 'BF16 or ' : ''}F32)`;
}

/**
 * float32 bits -> F16 bits, round to nearest, ties to even. NaN stays NaN (quiet, top payload bits
 * kept); finite values that round past 65504 are reported by the caller.
 */
function floatBitsToHalf(x: number, asFloat: number): number {
  const sign = (x >>> 16) & 0x8000;
  const abs = x & 0x7fffffff;
  if (abs >= 0x7f800000) return sign | 0x7c00 | (abs > 0x7f800000 ? 0x200 | ((abs >>> 13) & 0x3ff) : 0);
  if (abs >= 0x477ff000) return sign | 0x7c00; // at or past 65520, the midpoint between 65504 and 2^16
  if (abs >= 0x38800000) {
    // Normal: rebias the exponent (127 -> 15) and round away the low 13 mantissa bits; a carry
    // into the exponent is the correct result.
    return sign | ((abs - 0x38000000 + 0xfff + ((abs >>> 13) & 1)) >>> 13);
  }
  // Subnormal or zero: the value in units of 2^-24 (exact in a double), rounded half to even.
  const units = Math.abs(asFloat) * 2 ** 24;
  let n = Math.floor(units);
  const rest = units - n;
  if (rest > 0.5 || (rest === 0.5 && (n & 1) === 1)) n++;
  return sign | n;
}

/**
 * The little-endian bytes of `data` (a float32 or int32 tensor's elements) stored as `storage`
 * (F16, BF16, F64 or I64). `name` is the tensor's, for messages; throws through `fail`.
 */
export function convertToStorage(data: TypedArray, storage: SafetensorsDtype, name: string, fail: Fail): Uint8Array {
  const count = data.length;
  const out = new ArrayBuffer(count * STORAGE[storage].bytes);
  const src32 = new Uint32Array(data.buffer, data.byteOffset, data instanceof Float32Array || data instanceof Int32Array ? count : 0);
  switch (storage) {
    case 'F16': {
      const f = data as Float32Array;
      const dst = new Uint16Array(out);
      for (let i = 0; i < count; i++) {
        const h = floatBitsToHalf(src32[i], f[i]);
        if ((h & 0x7fff) === 0x7c00 && Number.isFinite(f[i])) fail(overflowMessage('F16', name, i, f[i], '65504'));
        dst[i] = h;
      }
      break;
    }
    case 'BF16': {
      const f = data as Float32Array;
      const dst = new Uint16Array(out);
      for (let i = 0; i < count; i++) {
        const x = src32[i];
        // NaN keeps its top bits and is made quiet, so dropping the low half cannot turn it into Inf.
        const h = (x & 0x7fffffff) > 0x7f800000 ? (x >>> 16) | 0x40 : (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
        if ((h & 0x7fff) === 0x7f80 && Number.isFinite(f[i])) fail(overflowMessage('BF16', name, i, f[i], '3.3895314e38'));
        dst[i] = h;
      }
      break;
    }
    case 'F64':
      new Float64Array(out).set(data);
      break;
    case 'I64': {
      const dst = new Int32Array(out);
      const [lo, hi] = HOST_IS_LITTLE_ENDIAN ? [0, 1] : [1, 0];
      for (let i = 0; i < count; i++) {
        dst[2 * i + lo] = data[i];
        dst[2 * i + hi] = data[i] < 0 ? -1 : 0;
      }
      break;
    }
    default:
      throw new Error(`convertToStorage: ${storage} is written without conversion`);
  }
  const bytes = new Uint8Array(out);
  if (!HOST_IS_LITTLE_ENDIAN) {
    const size = STORAGE[storage].bytes;
    for (let i = 0; i < bytes.length; i += size) bytes.subarray(i, i + size).reverse();
  }
  return bytes;
}
