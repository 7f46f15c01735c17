/**
 * PNG output, checked by decoding it back with a decoder written here from the PNG spec on top
 * of node:zlib (inflate, crc32): an independent reader, so an encoder bug (wrong CRC, bad zlib
 * framing, misplaced pixels) fails. Then the grid layout, and the file written by saveImageGrid.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { prng, expectThrows } from '../helpers.js';

interface Decoded {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}

/** Reads a non-interlaced 8-bit grey/RGB/RGBA PNG whose scanlines use filter 0, verifying every CRC. */
function decodePng(bytes: Uint8Array): Decoded {
  expect(Array.from(bytes.subarray(0, 8))).toEqual([137, 80, 78, 71, 13, 10, 26, 10]);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = 8;
  let header: Uint8Array | null = null;
  const idat: Uint8Array[] = [];
  const types: string[] = [];
  while (o < bytes.length) {
    const length = view.getUint32(o);
    const type = String.fromCharCode(...bytes.subarray(o + 4, o + 8));
    const body = bytes.subarray(o + 8, o + 8 + length);
    expect(view.getUint32(o + 8 + length), `CRC of ${type}`).toBe(zlib.crc32(bytes.subarray(o + 4, o + 8 + length)));
    types.push(type);
    if (type === 'IHDR') header = body;
    if (type === 'IDAT') idat.push(body);
    o += 12 + length;
  }
  expect(types[0]).toBe('IHDR');
  expect(types[types.length - 1]).toBe('IEND');
  const hv = new DataView(header!.buffer, header!.byteOffset, 13);
  const [width, height] = [hv.getUint32(0), hv.getUint32(4)];
  expect(header![8], 'bit depth').toBe(8);
  expect([header![10], header![11], header![12]], 'compression, filter, interlace').toEqual([0, 0, 0]);
  const channels = ({ 0: 1, 2: 3, 6: 4 } as Record<number, number>)[header![9]];
  const raw = zlib.inflateSync(Buffer.concat(idat)); // checks the zlib header and Adler-32
  const stride = width * channels;
  expect(raw.length).toBe((stride + 1) * height);
  const data = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    expect(raw[y * (stride + 1)], `filter byte of row ${y}`).toBe(0);
    data.set(raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)), y * stride);
  }
  return { width, height, channels, data };
}

function randomImage(width: number, height: number, channels: 1 | 3 | 4, seed: number): kiln.viz.Image {
  const r = prng(seed);
  return { width, height, channels, data: Uint8Array.from({ length: width * height * channels }, () => Math.floor(256 * r())) };
}

describe('PNG encoding', () => {
  it('round-trips grey, RGB and RGBA images, stored and deflated', () => {
    for (const [w, h, c] of [[1, 1, 1], [7, 5, 3], [33, 20, 4], [300, 250, 1]] as const) {
      const image = randomImage(w, h, c, w * h);
      for (const compress of [undefined, (b: Uint8Array) => zlib.deflateSync(b)]) {
        const back = decodePng(kiln.viz.encodePng(image, compress));
        expect([back.width, back.height, back.channels]).toEqual([w, h, c]);
        expect(Buffer.from(back.data).equals(Buffer.from(image.data)), `${w}x${h}x${c} pixels`).toBe(true);
      }
    }
  });

  it('zlibStore spans several stored blocks; crc32 agrees with zlib', () => {
    const data = randomImage(400, 400, 1, 1).data; // 160,000 bytes: three 65,535-byte blocks
    expect(Buffer.from(zlib.inflateSync(kiln.viz.zlibStore(data))).equals(Buffer.from(data))).toBe(true);
    expect(zlib.inflateSync(kiln.viz.zlibStore(new Uint8Array(0))).length).toBe(0);
    expect(kiln.viz.crc32(data.subarray(0, 1000), data.subarray(1000))).toBe(zlib.crc32(data));
  });

  it('rejects images whose size does not match their bytes', () => {
    expectThrows(() => kiln.viz.encodePng({ width: 2, height: 2, channels: 3, data: new Uint8Array(11) }), 'encodePng', 'needs 12 bytes, got 11');
    expectThrows(() => kiln.viz.encodePng({ width: 0, height: 2, channels: 1, data: new Uint8Array(0) }), 'encodePng', 'positive integers');
    expectThrows(() => kiln.viz.encodePng({ width: 1, height: 1, channels: 2 as 1, data: new Uint8Array(2) }), 'encodePng', 'channels must be 1, 3 or 4');
  });
});

describe('image grids', () => {
  it('places tiles row by row with padding, clamps to [0, 1] and upscales', () => {
    // Three 2x2 grey images with values 0.2, 0.6, 1.4 (clamped to 1), 2 columns, padding 1 (value 0).
    const values = [0.2, 0.6, 1.4];
    const images = { shape: [3, 2, 2], data: values.flatMap((v) => [v, v, v, v]) };
    const grid = kiln.viz.imageGrid(images, { cols: 2, padding: 1, padValue: 0 });
    expect([grid.width, grid.height, grid.channels]).toEqual([7, 7, 1]);
    const px = (x: number, y: number) => grid.data[y * 7 + x];
    expect([px(1, 1), px(2, 2), px(4, 1), px(5, 2), px(1, 4), px(2, 5)]).toEqual([51, 51, 153, 153, 255, 255]);
    expect([px(0, 0), px(3, 1), px(4, 4), px(6, 6)], 'padding and the empty fourth tile').toEqual([0, 0, 0, 0]);
    const big = kiln.viz.imageGrid({ shape: [2, 2], data: [0, 1, 1, 0] }, { scale: 3, padding: 0 });
    expect([big.width, big.height]).toEqual([6, 6]);
    expect([big.data[0], big.data[2], big.data[3], big.data[5 * 6 + 0], big.data[5 * 6 + 5]]).toEqual([0, 0, 255, 255, 0]);
  });

  it('interleaves channels of [N, 3, H, W] tensors and reads [N, 1, H, W] as grey', () => {
    kiln.tidy(() => {
      const rgb = kiln.tensor(Float32Array.from([1, 0, 0, 0.5, 0, 1, 0, 0.5, 0, 0, 1, 0.5]), [1, 3, 2, 2]);
      const grid = kiln.viz.imageGrid(rgb, { padding: 0 });
      expect(grid.channels).toBe(3);
      expect(Array.from(grid.data)).toEqual([255, 0, 0, 0, 255, 0, 0, 0, 255, 128, 128, 128]);
      expect(kiln.viz.imageGrid(kiln.ones([4, 1, 3, 3]), { padding: 1 }).channels).toBe(1);
    });
    expectThrows(() => kiln.viz.imageGrid({ shape: [2, 2, 3, 3], data: new Array(36).fill(0) }), 'imageGrid', '[N, 3, H, W]', '[2, 2, 3, 3]');
    expectThrows(() => kiln.viz.imageGrid({ shape: [1, 2, 2], data: [0, 0, 0, 0] }, { range: [1, 0] }), 'imageGrid', 'range');
  });

  it('saveImageGrid writes a PNG file (creating its directory) that decodes to the grid', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-viz-'));
    const file = path.join(dir, 'nested', 'digits.png');
    const r = prng(3);
    const images = { shape: [10, 28, 28], data: Array.from({ length: 10 * 784 }, () => r()) };
    const grid = kiln.viz.saveImageGrid(file, images, { cols: 5, scale: 2 });
    const back = decodePng(fs.readFileSync(file));
    expect([back.width, back.height, back.channels]).toEqual([grid.width, grid.height, 1]);
    expect(Buffer.from(back.data).equals(Buffer.from(grid.data))).toBe(true);
    fs.rmSync(dir, { recursive: true });
  });
});
