/**
 * Safetensors dtypes beyond Kiln's own (F16, BF16, F64, I64, U64, U32, I16, U16, U8): files written
 * by the reference writer from numpy load with the documented conversions, bit for bit (every F16
 * and BF16 pattern); values that do not fit are errors naming the tensor; and F16/BF16/F64/I64 that
 * Kiln writes equal numpy's (and ml_dtypes') own round-to-nearest-even conversions.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { decodeSafetensors, encodeSafetensors, loadTensors, saveTensors } from '../../ts/io/index.js';
import { forEachBackend } from '../backends.js';
import { expectNoLeaks, rawBytes, useTempDirs, pythonScript } from './io-helpers.js';

const python = pythonScript('dtypes.py');

/** Equal bit for bit, except that a NaN matches any NaN (hardware conversions may quiet a NaN). */
function expectSameFloatBits(actual: Uint8Array, expected: Uint8Array, what: string): void {
  const a = new Uint32Array(actual.slice().buffer);
  const e = new Uint32Array(expected.slice().buffer);
  expect(a.length, what).toBe(e.length);
  const isNaN = (bits: number) => (bits & 0x7fffffff) > 0x7f800000;
  const bad: string[] = [];
  for (let i = 0; i < e.length && bad.length < 5; i++) {
    if (a[i] !== e[i] && !(isNaN(a[i]) && isNaN(e[i]))) bad.push(`element ${i}: ${a[i].toString(16)} vs ${e[i].toString(16)}`);
  }
  expect(bad, what).toEqual([]);
}

/** float32 values covering F16's and BF16's rounding cases: specials, ties, subnormals, random bit patterns. */
function floatCases(): Float32Array {
  const bits: number[] = [
    0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7f800001, 0x7fa00000,
    0x3f800000, 0xbf800000,
    // F16: the largest value, the last float32 rounding down to it, the tie (-> Inf, excluded below)
    0x477fe000, 0x477fefff,
    // F16 ties in the normal range: 1 + 2^-11 (to even: 1), 1 + 3·2^-11 (to even: 1 + 2^-9)
    0x3f801000, 0x3f803000, 0x3f801001, 0x3f800fff,
    // F16 subnormals: 2^-24, 2^-25 (tie -> 0), 3·2^-25 (tie -> 2^-23), just above 2^-25, min normal 2^-14 and just below
    0x33800000, 0x33000000, 0x33c00000, 0x33000001, 0x38800000, 0x387fffff, 0x387fe000, 0x387ff000,
    // BF16 ties: 0x3f808000 (to even: 0x3f80), 0x3f818000 (-> 0x3f82); the largest BF16 and just below its tie
    0x3f808000, 0x3f818000, 0x7f7f0000, 0x7f7f7fff, 0x00008000, 0x00018000, 0x80000001,
  ];
  let seed = 12345;
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  for (let i = 0; i < 20000; i++) bits.push(next() ^ (next() << 16));
  return new Float32Array(Uint32Array.from(bits).buffer);
}

const tempDir = useTempDirs();
/** The out-of-range files, written once for the whole file. */
let outOfRangeDir: Promise<string> | undefined;

forEachBackend(() => {
  expectNoLeaks();

  describe('safetensors dtypes written by numpy', () => {
    it('every dtype loads with the documented conversion: all 65,536 F16 and BF16 patterns, F64, integer edges', async () => {
      const file = path.join(tempDir(), 'dtypes.safetensors');
      const want = JSON.parse(await python('write', file)) as Record<string, { dtype: string; shape: number[]; hex: string }>;
      const { tensors } = loadTensors(file);
      expect(Object.keys(tensors).sort()).toEqual(Object.keys(want).sort());
      for (const [name, w] of Object.entries(want)) {
        const t = tensors[name];
        expect(t.dtype, `${name} dtype`).toBe(w.dtype);
        expect([...t.shape], `${name} shape`).toEqual(w.shape);
        const expected = Uint8Array.from(Buffer.from(w.hex, 'hex'));
        if (w.dtype === 'float32') expectSameFloatBits(rawBytes(t), expected, name);
        else expect(Buffer.from(rawBytes(t)).toString('hex'), name).toBe(w.hex);
      }
      // -0 and the smallest F16 subnormal survive exactly (not only "close").
      const f16 = tensors['f16_all'].dataSync();
      expect(Object.is(f16[0x8000], -0)).toBe(true);
      expect(f16[1]).toBe(2 ** -24);
      kiln.dispose(tensors);
    });

    it.each(['too_big_i64', 'too_small_i64', 'too_big_u64', 'too_big_u32', 'too_big_f64'])('%s is an error naming the tensor, never a wrapped value', async (name) => {
      const dir = await (outOfRangeDir ??= (async () => {
        const d = tempDir();
        await python('out-of-range', d);
        return d;
      })());
      const file = path.join(dir, `${name}.safetensors`);
      expect(() => loadTensors(file)).toThrow(new RegExp(`loadTensors: '.*${name}.safetensors'.*tensor '${name}' is [IUF]\\d+ and element \\d+ is -?\\d`));
    });

    it('a dtype Kiln does not read is named as such, not called corrupt', () => {
      const json = '{"x":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}';
      const bytes = new Uint8Array(8 + json.length + 1);
      new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
      bytes.set(new TextEncoder().encode(json), 8);
      expect(() => decodeSafetensors(bytes)).toThrow(/tensor 'x' has dtype F8_E4M3, which Kiln cannot load \(it reads F64, F32, F16, BF16/);
    });
  });

  describe('writing F16, BF16, F64 and I64', () => {
    it('F16, BF16 and F64 files equal numpy\'s own conversions of the same float32 values (ties to even, subnormals, NaN, ±0, ±Inf)', async () => {
      const all = floatCases();
      // Values F16/BF16 cannot hold (they round to Infinity) are errors; the error cases are tested below.
      const fitsHalf = all.filter((v) => !Number.isFinite(v) || Math.abs(v) < 65520);
      const fitsBf16 = all.filter((v) => !Number.isFinite(v) || Math.abs(v) <= 3.3961e38);
      const source = { half: kiln.tensor(fitsHalf, [fitsHalf.length]), bf16: kiln.tensor(fitsBf16, [fitsBf16.length]), wide: kiln.tensor(all, [all.length]) };
      const dir = tempDir();
      saveTensors(path.join(dir, 'source.safetensors'), source);
      saveTensors(path.join(dir, 'narrow.safetensors'), source, undefined, { dtypes: { half: 'F16', bf16: 'BF16', wide: 'F64' } });
      const report = JSON.parse(await python('check', path.join(dir, 'source.safetensors'), path.join(dir, 'narrow.safetensors')));
      expect(report).toEqual({
        half: { dtype: 'F16', shape: [fitsHalf.length], mismatches: 0, examples: [] },
        bf16: { dtype: 'BF16', shape: [fitsBf16.length], mismatches: 0, examples: [] },
        wide: { dtype: 'F64', shape: [all.length], mismatches: 0, examples: [] },
      });
      // Read back, the narrowed values are exactly what the format holds: converting again changes nothing.
      const { tensors } = loadTensors(path.join(dir, 'narrow.safetensors'));
      const again = encodeSafetensors({ half: tensors.half }, undefined, { dtype: 'F16' });
      const reread = decodeSafetensors(again).tensors;
      expectSameFloatBits(rawBytes(reread.half), rawBytes(tensors.half), 'F16 round trip');
      expectSameFloatBits(rawBytes(tensors.wide), rawBytes(source.wide), 'F64 round trip');
      kiln.dispose([tensors, reread, source]);
    });

    it('int32 stored as I64 reads back in numpy as the same integers', async () => {
      const ids = kiln.tensor(Int32Array.from([-2147483648, 2147483647, 0, -1, 42]), [5], 'int32');
      const dir = tempDir();
      saveTensors(path.join(dir, 'source.safetensors'), { ids });
      saveTensors(path.join(dir, 'narrow.safetensors'), { ids }, undefined, { dtypes: { ids: 'I64' } });
      expect(JSON.parse(await python('check', path.join(dir, 'source.safetensors'), path.join(dir, 'narrow.safetensors')))).toEqual({
        ids: { dtype: 'I64', shape: [5], mismatches: 0, examples: [] },
      });
      const { tensors } = loadTensors(path.join(dir, 'narrow.safetensors'));
      expect([...tensors.ids.dataSync()]).toEqual([-2147483648, 2147483647, 0, -1, 42]);
      kiln.dispose([tensors, ids]);
    });

    it('a finite value too large for F16 or BF16 is an error naming the tensor and the element, not Infinity', () => {
      const big = kiln.tensor(Float32Array.from([1, 70000]), [2]);
      const huge = kiln.tensor(Float32Array.from([3.4e38]), [1]);
      expect(() => encodeSafetensors({ big }, undefined, { dtype: 'F16' })).toThrow(/encodeSafetensors: tensor 'big' element 1 is 70000, beyond F16's largest value \(65504\)/);
      expect(() => encodeSafetensors({ huge }, undefined, { dtype: 'BF16' })).toThrow(/tensor 'huge' element 0 is .*beyond BF16's largest value/);
      kiln.dispose([big, huge]);
    });

    it('bad storage options are errors naming the function and the tensor', () => {
      const w = kiln.tensor(Float32Array.from([1]), [1]);
      const ids = kiln.tensor(Int32Array.from([1]), [1], 'int32');
      expect(() => saveTensors(path.join(tempDir(), 'x.safetensors'), { w }, undefined, { dtype: 'F8' as never })).toThrow(/saveTensors: tensor 'w': 'F8' is not a safetensors dtype Kiln writes/);
      expect(() => encodeSafetensors({ ids }, undefined, { dtypes: { ids: 'F16' } })).toThrow(/encodeSafetensors: tensor 'ids': a int32 tensor cannot be stored as F16 \(it can be: I32, I64\)/);
      expect(() => encodeSafetensors({ w }, undefined, { dtypes: { wieght: 'F16' } })).toThrow(/encodeSafetensors: dtypes names tensors that are not being saved: wieght/);
      kiln.dispose([w, ids]);
    });
  });
});
