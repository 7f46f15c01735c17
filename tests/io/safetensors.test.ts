/**
 * encodeSafetensors / decodeSafetensors: round trips for every dtype and shape kind, the exact byte
 * layout of a tiny file checked against a hand-computed byte string, and bad input on the encode side.
 */
import { describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { decodeSafetensors, encodeSafetensors } from '../../ts/io/index.js';
import { forEachBackend } from '../backends.js';
import { expectThrows } from '../helpers.js';
import { expectNoLeaks, expectSameTensors, sampleTensors } from './io-helpers.js';

const ascii = (s: string) => Array.from(new TextEncoder().encode(s));
const hex = (s: string) => (s.match(/../g) ?? []).map((b) => parseInt(b, 16));

/** Reads the header JSON of encoded bytes (for layout assertions). */
function headerOf(bytes: Uint8Array): { size: number; json: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> } {
  const size = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { size, json: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + size))) };
}

forEachBackend(() => {
  expectNoLeaks();

  describe('round trips', () => {
    it('float32, int32 and bool tensors of all shape kinds (scalars, size 0, rank 3) come back bit-exact', () => {
      const tensors = sampleTensors();
      const bytes = encodeSafetensors(tensors);
      const back = decodeSafetensors(bytes);
      expectSameTensors(back.tensors, tensors);
      expect(back.metadata).toEqual({});
      kiln.dispose([tensors, back.tensors]);
    });

    it('metadata round trips, including unicode and empty strings', () => {
      const t = { x: kiln.ones([2]) };
      const metadata = { format: 'pt', note: 'ünïcödé ✓ "quoted"\n', empty: '' };
      const back = decodeSafetensors(encodeSafetensors(t, metadata));
      expect(back.metadata).toEqual(metadata);
      kiln.dispose([t, back.tensors]);
    });

    it('an empty state dict is a valid file', () => {
      const bytes = encodeSafetensors({});
      expect(Array.from(bytes)).toEqual([8, 0, 0, 0, 0, 0, 0, 0, ...ascii('{}      ')]);
      expect(decodeSafetensors(bytes)).toEqual({ tensors: {}, metadata: {} });
    });

    it('views (transposed, sliced, broadcast) are saved as their row-major elements', () => {
      const base = kiln.tensor(Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]);
      const column = kiln.tensor(Float32Array.from([7, 8]), [2, 1]);
      const views = { t: base.transpose(), s: base.slice([0, 1], [2, 2]), e: column.expand([2, 3]) };
      const back = decodeSafetensors(encodeSafetensors(views));
      expect(Array.from(back.tensors.t.dataSync())).toEqual([1, 4, 2, 5, 3, 6]);
      expect(Array.from(back.tensors.s.dataSync())).toEqual([2, 3, 5, 6]);
      expect(Array.from(back.tensors.e.dataSync())).toEqual([7, 7, 7, 8, 8, 8]);
      kiln.dispose([base, column, views, back.tensors]);
    });

    it('decodes from a Uint8Array that sits at an odd offset inside a larger buffer (unaligned data is copied)', () => {
      const tensors = sampleTensors();
      const bytes = encodeSafetensors(tensors);
      const shifted = new Uint8Array(bytes.length + 3);
      shifted.set(bytes, 3);
      const back = decodeSafetensors(shifted.subarray(3));
      expectSameTensors(back.tensors, tensors);
      kiln.dispose([tensors, back.tensors]);
    });

    it('names that are special to JS objects (__proto__, integer-like) survive', () => {
      const tensors: Record<string, kiln.Tensor> = {};
      for (const name of ['__proto__', 'constructor', '10', '2', 'toString']) {
        Object.defineProperty(tensors, name, { value: kiln.scalar(name.length), enumerable: true });
      }
      const back = decodeSafetensors(encodeSafetensors(tensors));
      expect(Object.getPrototypeOf(back.tensors)).toBe(Object.prototype);
      expect(Object.keys(back.tensors).sort()).toEqual(['10', '2', '__proto__', 'constructor', 'toString']);
      expect(back.tensors['__proto__'].dataSync()[0]).toBe(9);
      kiln.dispose([Object.values(tensors), Object.values(back.tensors)]);
    });
  });

  describe('byte layout', () => {
    it('a tiny file matches the hand-computed bytes exactly', () => {
      const a = kiln.tensor(Float32Array.from([1, -2]), [2]);
      const b = kiln.tensor(Uint8Array.from([1]), [], 'bool');
      // Header JSON: 107 bytes, padded with 5 spaces to 112 (a multiple of 8) = 0x70.
      const json = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"BOOL","shape":[],"data_offsets":[8,9]}}';
      expect(json.length).toBe(107);
      const expected = [
        ...hex('7000000000000000'), // u64 LE header size 112
        ...ascii(json),
        ...ascii('     '), // 5 spaces of padding
        ...hex('0000803f'), // 1.0f LE
        ...hex('000000c0'), // -2.0f LE
        ...hex('01'), // true
      ];
      // Insertion order must not matter: b is listed first here.
      expect(Array.from(encodeSafetensors({ b, a }))).toEqual(expected);
      kiln.dispose([a, b]);
    });

    it('metadata comes first in the header; int32 is little-endian', () => {
      const i = kiln.tensor(Int32Array.from([1, -1]), [2]);
      const json = '{"__metadata__":{"k":"v"},"i":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}';
      const padded = Math.ceil(json.length / 8) * 8;
      const bytes = encodeSafetensors({ i }, { k: 'v' });
      expect(Array.from(bytes)).toEqual([padded, 0, 0, 0, 0, 0, 0, 0, ...ascii(json.padEnd(padded, ' ')), ...hex('01000000ffffffff')]);
      i.dispose();
    });

    it('tensors are contiguous, ordered F32, I32, BOOL, then by name; every offset is aligned to its element size', () => {
      const tensors = sampleTensors();
      const bytes = encodeSafetensors(tensors);
      const { size, json } = headerOf(bytes);
      expect(size % 8).toBe(0);
      const order = Object.entries(json).sort((x, y) => x[1].data_offsets[0] - y[1].data_offsets[0] || x[1].data_offsets[1] - y[1].data_offsets[1]);
      let cursor = 0;
      for (const [name, info] of order) {
        expect(info.data_offsets[0], `${name} starts where the previous tensor ended`).toBe(cursor);
        expect(info.data_offsets[0] % (info.dtype === 'BOOL' ? 1 : 4), `${name} aligned`).toBe(0);
        cursor = info.data_offsets[1];
      }
      expect(8 + size + cursor).toBe(bytes.length);
      const names = Object.keys(json);
      // The reference writer sorts names by their UTF-8 bytes.
      const byUtf8 = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
      const ofType = (dtype: string) => names.filter((n) => json[n].dtype === dtype).sort(byUtf8);
      expect(names).toEqual([...ofType('F32'), ...ofType('I32'), ...ofType('BOOL')]);
      expect(order.map(([n]) => n).filter((n) => json[n].data_offsets[0] !== json[n].data_offsets[1])).toEqual(
        names.filter((n) => json[n].data_offsets[0] !== json[n].data_offsets[1]),
      );
      kiln.dispose(tensors);
    });
  });

  describe('bad input to encode', () => {
    it('rejects non-tensors, disposed tensors, reserved and empty names, non-string metadata', () => {
      const t = kiln.ones([2]);
      const gone = kiln.ones([2]);
      gone.dispose();
      expectThrows(() => encodeSafetensors({ w: [1, 2] as unknown as kiln.Tensor }), 'encodeSafetensors', "'w' is not a Tensor");
      expectThrows(() => encodeSafetensors({ w: gone }), "tensor 'w' is disposed");
      expectThrows(() => encodeSafetensors({ __metadata__: t }), "'__metadata__' is reserved");
      expectThrows(() => encodeSafetensors({ '': t }), 'empty name');
      expectThrows(() => encodeSafetensors({ t }, { n: 3 as unknown as string }), "metadata values must be strings, but 'n' is number");
      expectThrows(() => encodeSafetensors(null as unknown as Record<string, kiln.Tensor>), 'expected an object');
      t.dispose();
    });
  });
});
