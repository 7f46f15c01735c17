/**
 * Reading and checking a safetensors header. The file is treated as hostile: every number in the
 * header is checked against the file before any tensor is made, so a corrupt or truncated file
 * gives one clear error naming the tensor at fault, never a bad read or a partial result.
 *
 * Layout (https://github.com/huggingface/safetensors, "Format"):
 *   8 bytes   N, unsigned little-endian 64-bit: the header size
 *   N bytes   UTF-8 JSON object, starting with '{', possibly padded with trailing spaces:
 *             { "__metadata__": { string: string }, name: { dtype, shape, data_offsets: [begin, end] } }
 *   the rest  the data section; offsets are relative to its start, and the tensors must cover it
 *             exactly (contiguous, no overlap, no gap, nothing after the last tensor)
 */

import type { DType } from '../backends/backend.js';
import { findDuplicateKey } from './json.js';
import { READABLE_LIST, STORAGE, UNSUPPORTED_STORAGE, isSafetensorsDtype, type Fail, type SafetensorsDtype } from './safetensors-dtypes.js';

/** The same header size limit as the reference implementation: refuse to parse 100 MB of JSON. */
export const MAX_HEADER_BYTES = 100_000_000;

export const METADATA_KEY = '__metadata__';

/** One tensor's header entry, checked; offsets are relative to the data section. */
export interface TensorEntry {
  name: string;
  /** The Kiln dtype it loads as. */
  dtype: DType;
  /** The dtype in the file. */
  stored: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

export interface ParsedHeader {
  /** Sorted by position in the data section. */
  entries: TensorEntry[];
  metadata: Record<string, string>;
  /** Where the data section starts in the file: 8 + N. */
  dataStart: number;
}

export type { Fail };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Reads the size field and the header JSON, checking both against the file. */
function readHeaderJson(bytes: Uint8Array, fail: Fail): { header: Record<string, unknown>; text: string; dataStart: number } {
  if (bytes.length < 8) {
    fail(`it is ${bytes.length} bytes long, too short for the 8-byte header size field (empty or truncated file)`);
  }
  const size = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  const available = bytes.length - 8;
  if (size > BigInt(available)) {
    fail(`the header size field says ${size} bytes but only ${available} bytes follow it (truncated file, or not a safetensors file)`);
  }
  const n = Number(size);
  if (n > MAX_HEADER_BYTES) fail(`the header is ${n} bytes, more than the ${MAX_HEADER_BYTES}-byte limit`);
  if (n < 2) fail(`the header size field says ${n} bytes, too small for a JSON object`);
  let text: string;
  try {
    // ignoreBOM keeps a byte-order mark in the text, so it fails the '{' check below instead of being skipped.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    fail('the header is not valid UTF-8');
  }
  if (text[0] !== '{') fail(`the header must start with '{' (a JSON object), but starts with ${JSON.stringify(text.slice(0, 16))}`);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    fail(`the header is not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(header)) fail('the header is not a JSON object');
  return { header, text, dataStart: 8 + n };
}

function checkDuplicates(text: string, fail: Fail): void {
  const dup = findDuplicateKey(text);
  if (dup === null) return;
  if (dup.parents.length === 0) fail(`the tensor name '${dup.key}' occurs twice in the header`);
  const where = dup.parents[0] === METADATA_KEY ? 'the __metadata__' : `the entry of tensor '${dup.parents[0]}'`;
  fail(`the key '${dup.key}' occurs twice in ${where}`);
}

function readMetadata(value: unknown, fail: Fail): Record<string, string> {
  if (!isObject(value)) fail('__metadata__ must be an object mapping strings to strings');
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') fail(`__metadata__ values must be strings, but '${k}' is ${JSON.stringify(v)}`);
    Object.defineProperty(metadata, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return metadata;
}

function readEntry(name: string, info: unknown, dataLength: number, fail: Fail): TensorEntry {
  const t = `tensor '${name}'`;
  if (name === '') fail('a tensor has an empty name');
  if (!isObject(info)) fail(`${t}: its header entry must be an object with dtype, shape and data_offsets`);
  const { dtype: st, shape, data_offsets: offsets } = info;
  if (typeof st !== 'string') fail(`${t}: dtype must be a string, got ${JSON.stringify(st)}`);
  if (!isSafetensorsDtype(st)) {
    if (UNSUPPORTED_STORAGE.has(st)) fail(`${t} has dtype ${st}, which Kiln cannot load (it reads ${READABLE_LIST}); convert it first, e.g. to F32`);
    fail(`${t} has unknown dtype '${st}' (Kiln reads ${READABLE_LIST})`);
  }
  const stored: SafetensorsDtype = st;
  const dtype = STORAGE[stored].loadsAs;
  if (!Array.isArray(shape) || !shape.every(isCount)) fail(`${t}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    fail(`${t}: data_offsets must be [begin, end] with non-negative integers, got ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) fail(`${t}: data_offsets [${begin}, ${end}] end before they begin`);
  const size = shape.reduce((a: number, d: number) => a * d, 1);
  const need = size * STORAGE[stored].bytes;
  if (!Number.isSafeInteger(need)) fail(`${t}: shape [${shape.join(', ')}] is impossibly large`);
  if (end - begin !== need) {
    fail(`${t}: data_offsets [${begin}, ${end}] span ${end - begin} bytes, but ${st} [${shape.join(', ')}] needs ${need}`);
  }
  if (end > dataLength) {
    fail(`${t}: data_offsets [${begin}, ${end}] reach past the end of the data section (${dataLength} bytes): the file is truncated`);
  }
  return { name, dtype, stored, shape: shape as number[], begin, end };
}

/** The tensors must tile the data section exactly, as the reference implementation requires. */
function checkLayout(entries: TensorEntry[], dataLength: number, fail: Fail): void {
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous: TensorEntry | undefined;
  for (const e of entries) {
    if (e.begin < cursor) {
      fail(`tensors '${previous!.name}' [${previous!.begin}, ${previous!.end}] and '${e.name}' [${e.begin}, ${e.end}] overlap in the data section`);
    }
    if (e.begin > cursor) fail(`bytes [${cursor}, ${e.begin}) of the data section belong to no tensor (before tensor '${e.name}')`);
    cursor = e.end;
    previous = e;
  }
  if (cursor < dataLength) fail(`the last ${dataLength - cursor} bytes of the data section belong to no tensor (trailing data)`);
}

/** Parses and checks the header of the safetensors file in `bytes`; `fail` raises the error. */
export function parseHeader(bytes: Uint8Array, fail: Fail): ParsedHeader {
  const { header, text, dataStart } = readHeaderJson(bytes, fail);
  checkDuplicates(text, fail);
  const dataLength = bytes.length - dataStart;
  let metadata: Record<string, string> = {};
  const entries: TensorEntry[] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === METADATA_KEY) metadata = readMetadata(info, fail);
    else entries.push(readEntry(name, info, dataLength, fail));
  }
  checkLayout(entries, dataLength, fail);
  return { entries, metadata, dataStart };
}
