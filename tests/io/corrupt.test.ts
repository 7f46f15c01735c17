/**
 * Corrupt safetensors bytes: each case starts from a valid file (or a hand-made header) and breaks
 * one thing. Every case must throw a clear Error naming the problem (and the tensor, where there is
 * one), and must leave no tensors behind.
 */
import { describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { decodeSafetensors, encodeSafetensors } from '../../ts/io/index.js';
import { forEachBackend } from '../backends.js';
import { expectThrows, prng } from '../helpers.js';
import { expectNoLeaks } from './io-helpers.js';

/** A file with exactly this header text (space-padded to 8) and data section. */
function craft(header: string | object, data: ArrayLike<number> = []): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const size = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + size + data.length).fill(0x20, 8, 8 + size);
  new DataView(out.buffer).setBigUint64(0, BigInt(size), true);
  out.set(json, 8);
  out.set(data, 8 + size);
  return out;
}

/** A valid file: weight F32 [3, 4], bias F32 [4], mask BOOL [3]. */
function validFile(): Uint8Array {
  const tensors = {
    weight: kiln.tensor(Float32Array.from({ length: 12 }, (_, i) => i), [3, 4]),
    bias: kiln.tensor(Float32Array.from([1, 2, 3, 4]), [4]),
    mask: kiln.tensor(Uint8Array.from([1, 0, 1]), [3], 'bool'),
  };
  const bytes = encodeSafetensors(tensors);
  kiln.dispose(tensors);
  return bytes;
}

/** Replaces the first occurrence of `from` in the header with `to` (same length, so the size field stays right). */
function editHeader(bytes: Uint8Array, from: string, to: string): Uint8Array {
  expect(to.length).toBe(from.length);
  const text = new TextDecoder().decode(bytes);
  const at = text.indexOf(from);
  expect(at, `'${from}' in the header`).toBeGreaterThan(0);
  const out = bytes.slice();
  out.set(new TextEncoder().encode(to), at);
  return out;
}

const decode = (bytes: Uint8Array) => () => decodeSafetensors(bytes);
const F32 = (shape: number[], offsets: [number, number]) => ({ dtype: 'F32', shape, data_offsets: offsets });
const NOT_VALID = 'decodeSafetensors: the data is not a valid safetensors file';

forEachBackend(() => {
  expectNoLeaks();

  describe('the size field and the header text', () => {
    it('empty or tiny files', () => {
      expectThrows(decode(new Uint8Array(0)), NOT_VALID, '0 bytes long, too short for the 8-byte header size field');
      expectThrows(decode(validFile().subarray(0, 5)), '5 bytes long');
    });

    it('header size beyond the file', () => {
      const bytes = validFile();
      const big = bytes.slice();
      new DataView(big.buffer).setBigUint64(0, BigInt(bytes.length), true);
      expectThrows(decode(big), `the header size field says ${bytes.length} bytes but only ${bytes.length - 8} bytes follow it`);
      new DataView(big.buffer).setBigUint64(0, 2n ** 63n + 5n, true);
      expectThrows(decode(big), 'the header size field says 9223372036854775813 bytes');
    });

    it('header size too small for JSON', () => {
      const bytes = validFile();
      new DataView(bytes.buffer).setBigUint64(0, 1n, true);
      expectThrows(decode(bytes), 'the header size field says 1 bytes, too small for a JSON object');
    });

    it('a file cut off inside the header', () => {
      expectThrows(decode(validFile().subarray(0, 40)), 'the header size field says', 'only 32 bytes follow it (truncated file');
    });

    it('invalid JSON', () => {
      expectThrows(decode(editHeader(validFile(), '"shape":', '"shape";')), NOT_VALID, 'the header is not valid JSON');
      expectThrows(decode(craft('{"a": 1')), 'not valid JSON');
    });

    it('a header that is not a JSON object', () => {
      expectThrows(decode(craft('[1, 2, 3]')), "the header must start with '{'");
      expectThrows(decode(craft('\ufeff{}')), "must start with '{'");
    });

    it('invalid UTF-8', () => {
      const bytes = editHeader(validFile(), 'bias', 'bia!');
      bytes[bytes.indexOf('!'.charCodeAt(0))] = 0xff;
      expectThrows(decode(bytes), 'the header is not valid UTF-8');
    });

    it('non-string metadata', () => {
      expectThrows(decode(craft({ __metadata__: { epoch: 3 } })), "__metadata__ values must be strings, but 'epoch' is 3");
      expectThrows(decode(craft({ __metadata__: ['x'] })), '__metadata__ must be an object');
    });
  });

  describe('tensor entries', () => {
    it('unknown dtype', () => {
      expectThrows(decode(editHeader(validFile(), '"F32"', '"F33"')), "tensor 'bias' has unknown dtype 'F33'");
    });

    it('a real safetensors dtype Kiln cannot hold says how to convert', () => {
      expectThrows(decode(craft({ h: { dtype: 'F8_E5M2', shape: [2], data_offsets: [0, 2] } }, [0, 0])), "tensor 'h' has dtype F8_E5M2, which Kiln cannot load", 'convert it first');
    });

    it('offsets that do not match dtype x shape', () => {
      expectThrows(decode(editHeader(validFile(), '[3,4]', '[3,5]')), "tensor 'weight': data_offsets [16, 64] span 48 bytes, but F32 [3, 5] needs 60");
      expectThrows(decode(craft({ a: F32([2], [0, 4]) }, [0, 0, 0, 0])), "tensor 'a'", 'span 4 bytes, but F32 [2] needs 8');
    });

    it('offsets out of range', () => {
      expectThrows(decode(craft({ a: F32([2], [8, 16]) }, new Uint8Array(8))), "tensor 'a': data_offsets [8, 16] reach past the end of the data section (8 bytes)");
      expectThrows(decode(craft({ a: F32([1], [8, 4]) }, new Uint8Array(8))), "tensor 'a': data_offsets [8, 4] end before they begin");
      expectThrows(decode(craft({ a: F32([1], [-4, 0]) })), "tensor 'a': data_offsets must be [begin, end] with non-negative integers, got [-4,0]");
      expectThrows(decode(craft({ a: F32([1], [0, 4, 8] as unknown as [number, number]) })), 'data_offsets must be [begin, end]');
    });

    it('overlapping tensors', () => {
      expectThrows(decode(craft({ a: F32([2], [0, 8]), b: F32([2], [4, 12]) }, new Uint8Array(12))), "tensors 'a' [0, 8] and 'b' [4, 12] overlap");
    });

    it('a gap between tensors, and bytes after the last one', () => {
      expectThrows(decode(craft({ a: F32([1], [0, 4]), b: F32([1], [8, 12]) }, new Uint8Array(12))), "bytes [4, 8) of the data section belong to no tensor (before tensor 'b')");
      const bytes = validFile();
      const longer = new Uint8Array(bytes.length + 4);
      longer.set(bytes);
      expectThrows(decode(longer), 'the last 4 bytes of the data section belong to no tensor (trailing data)');
    });

    it('truncated data names the tensor that is cut off', () => {
      const bytes = validFile();
      expectThrows(decode(bytes.subarray(0, bytes.length - 1)), "tensor 'mask': data_offsets [64, 67] reach past the end of the data section (66 bytes): the file is truncated");
      expectThrows(decode(bytes.subarray(0, bytes.length - 10)), "tensor 'weight'", 'truncated');
    });

    it('duplicate tensor names and duplicate keys inside an entry', () => {
      const a = '{"dtype":"F32","shape":[1],"data_offsets":[0,4]}';
      expectThrows(decode(craft(`{"a":${a},"a":${a}}`, new Uint8Array(4))), "the tensor name 'a' occurs twice in the header");
      expectThrows(decode(craft('{"a":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}}', new Uint8Array(4))), "the key 'dtype' occurs twice in the entry of tensor 'a'");
      expectThrows(decode(craft('{"__metadata__":{"k":"1","k":"2"}}')), "the key 'k' occurs twice in the __metadata__");
    });

    it('an empty name', () => {
      expectThrows(decode(craft({ '': F32([1], [0, 4]) }, new Uint8Array(4))), 'a tensor has an empty name');
    });

    it('malformed entries: not an object, bad shape, missing fields', () => {
      expectThrows(decode(craft({ a: 5 })), "tensor 'a': its header entry must be an object");
      expectThrows(decode(craft({ a: F32([-1], [0, 0]) })), "tensor 'a': shape must be an array of non-negative integers, got [-1]");
      expectThrows(decode(craft({ a: F32([1.5], [0, 6]) })), "tensor 'a': shape must be");
      expectThrows(decode(craft({ a: { dtype: 'F32', shape: [1] } }, new Uint8Array(4))), "tensor 'a': data_offsets must be");
      expectThrows(decode(craft({ a: { shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4))), "tensor 'a': dtype must be a string");
      expectThrows(decode(craft({ a: F32([2 ** 40, 2 ** 40], [0, 4]) }, new Uint8Array(4))), "tensor 'a': shape [1099511627776, 1099511627776] is impossibly large");
    });

    it('BOOL bytes other than 0 and 1; the tensors made before the failure are freed', () => {
      const bytes = validFile();
      bytes[bytes.length - 2] = 7;
      expectThrows(decode(bytes), "tensor 'mask' is BOOL but element 1 is the byte 7");
    });
  });

  describe('fuzzing', () => {
    it('every truncation of a valid file throws an Error', () => {
      const bytes = validFile();
      for (let n = 0; n < bytes.length; n++) expectThrows(decode(bytes.subarray(0, n)), NOT_VALID);
    });

    it('random byte flips either decode or throw a proper Error, never crash or leak', () => {
      const bytes = validFile();
      const r = prng(7);
      let threw = 0;
      for (let trial = 0; trial < 2000; trial++) {
        const b = bytes.slice();
        for (let k = 0; k < 1 + Math.floor(r() * 3); k++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
        try {
          kiln.dispose(decodeSafetensors(b).tensors);
        } catch (e) {
          expect(e).toBeInstanceOf(Error);
          expect((e as Error).message).toContain(NOT_VALID);
          threw++;
        }
      }
      expect(threw).toBeGreaterThan(100);
    });
  });
});
