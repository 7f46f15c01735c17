/** The IDX reader: hand-made files of every element type, and every way a file can be broken. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { parseIdx, readIdx } from '../../ts/data/index.js';
import { parseIdx as parseIdxInBrowser } from '../../ts/data/browser.js';
import { expectThrows } from '../helpers.js';

/** An IDX file: header for `typeByte` and `shape`, then `body` as given (already big-endian). */
function idx(typeByte: number, shape: number[], body: Uint8Array): Uint8Array {
  const header = new Uint8Array(4 + 4 * shape.length);
  const view = new DataView(header.buffer);
  header[2] = typeByte;
  header[3] = shape.length;
  shape.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  const out = new Uint8Array(header.length + body.length);
  out.set(header);
  out.set(body, header.length);
  return out;
}

function bigEndian(values: number[], bytes: number, write: (v: DataView, at: number, x: number) => void): Uint8Array {
  const out = new Uint8Array(values.length * bytes);
  const view = new DataView(out.buffer);
  values.forEach((x, i) => write(view, i * bytes, x));
  return out;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-idx-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('parseIdx', () => {
  it('reads uint8 data as a view with its shape', () => {
    const file = idx(0x08, [2, 3], Uint8Array.from([0, 1, 2, 253, 254, 255]));
    const r = parseIdx(file);
    expect(r.dtype).toBe('uint8');
    expect(r.shape).toEqual([2, 3]);
    expect(r.data).toBeInstanceOf(Uint8Array);
    expect(Array.from(r.data)).toEqual([0, 1, 2, 253, 254, 255]);
    expect(r.data.buffer, 'no copy of the file bytes').toBe(file.buffer);
  });

  it('decodes the big-endian wider types', () => {
    const i16 = parseIdx(idx(0x0b, [3], bigEndian([-2, 300, 32767], 2, (v, a, x) => v.setInt16(a, x, false))));
    expect(i16.dtype).toBe('int16');
    expect(Array.from(i16.data)).toEqual([-2, 300, 32767]);
    const i32 = parseIdx(idx(0x0c, [1, 2], bigEndian([-70000, 123456789], 4, (v, a, x) => v.setInt32(a, x, false))));
    expect(i32.data).toBeInstanceOf(Int32Array);
    expect(Array.from(i32.data)).toEqual([-70000, 123456789]);
    const f32 = parseIdx(idx(0x0d, [2], bigEndian([1.5, -0.25], 4, (v, a, x) => v.setFloat32(a, x, false))));
    expect(Array.from(f32.data)).toEqual([1.5, -0.25]);
    const f64 = parseIdx(idx(0x0e, [1], bigEndian([Math.PI], 8, (v, a, x) => v.setFloat64(a, x, false))));
    expect(f64.data[0]).toBe(Math.PI);
    const i8 = parseIdx(idx(0x09, [2], Uint8Array.from([0xff, 0x01])));
    expect(Array.from(i8.data)).toEqual([-1, 1]);
  });

  it('reads gzipped files (as downloaded) transparently', () => {
    const r = parseIdx(gzipSync(idx(0x08, [2], Uint8Array.from([7, 9]))), 'labels.gz');
    expect(r.shape).toEqual([2]);
    expect(Array.from(r.data)).toEqual([7, 9]);
  });

  it("the browser entry's parseIdx reads plain bytes and says how to decompress gzipped ones", () => {
    const plain = idx(0x08, [2], Uint8Array.from([7, 9]));
    expect(Array.from(parseIdxInBrowser(plain, 'labels').data)).toEqual([7, 9]);
    expectThrows(() => parseIdxInBrowser(gzipSync(plain), 'labels.gz'), "parseIdx: 'labels.gz' is gzip-compressed", 'DecompressionStream');
  });

  it('rejects broken files with the name and the reason', () => {
    const good = idx(0x08, [2, 2], Uint8Array.from([1, 2, 3, 4]));
    expectThrows(() => parseIdx(good.subarray(0, 3), 'a.idx'), "'a.idx'", 'fewer than the 4-byte magic');
    expectThrows(() => parseIdx(Uint8Array.from([0x50, 0x4b, 3, 4, 0, 0, 0, 0]), 'zip.idx'), "'zip.idx'", 'magic number is 0x504b0304');
    expectThrows(() => parseIdx(idx(0x07, [1], Uint8Array.from([1])), 'b.idx'), 'unknown type byte 0x07');
    expectThrows(() => parseIdx(idx(0x08, [], new Uint8Array(0)), 'c.idx'), 'dimension count is 0');
    expectThrows(() => parseIdx(good.subarray(0, 9), 'd.idx'), "'d.idx'", 'declares 2 dimensions', 'truncated');
    expectThrows(() => parseIdx(good.subarray(0, good.length - 1), 'e.idx'), "'e.idx'", 'it has 15 bytes', 'shape [2, 2] of uint8 needs 16 bytes', 'truncated');
    const long = new Uint8Array(good.length + 3);
    long.set(good);
    expectThrows(() => parseIdx(long, 'f.idx'), "'f.idx'", '3 unexpected trailing bytes');
    expectThrows(() => parseIdx(gzipSync(good).subarray(0, 10), 'g.gz'), "'g.gz'", 'gzip-compressed but does not decompress');
  });
});

describe('readIdx', () => {
  it('reads a file and names it in errors', () => {
    const file = path.join(tmp, 'ok-idx1-ubyte');
    fs.writeFileSync(file, idx(0x08, [3], Uint8Array.from([4, 5, 6])));
    expect(Array.from(readIdx(file).data)).toEqual([4, 5, 6]);
    const cut = path.join(tmp, 'cut-idx1-ubyte');
    fs.writeFileSync(cut, idx(0x08, [3], Uint8Array.from([4, 5])));
    expectThrows(() => readIdx(cut), cut, 'truncated');
    const missing = path.join(tmp, 'missing');
    expectThrows(() => readIdx(missing), missing, 'does not exist');
    expectThrows(() => readIdx(tmp), 'is a directory');
  });
});
