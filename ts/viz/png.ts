/**
 * A minimal PNG encoder (8-bit grey, RGB or RGBA; no interlace). PNG needs a zlib stream for its
 * pixel data: pass a real compressor (the Node entry passes node:zlib's deflateSync), or keep the
 * default, which stores the bytes uncompressed in valid zlib framing and so runs anywhere
 * (browsers included) at the cost of file size.
 */

import { crc32 } from '../checksum.js';

/** Pixels, row-major, channels interleaved (RGBRGB...), one byte per sample. */
export interface Image {
  width: number;
  height: number;
  /** 1 grey, 3 RGB, 4 RGBA. */
  channels: 1 | 3 | 4;
  /** width · height · channels bytes. */
  data: Uint8Array;
}

/** Bytes in -> a zlib stream (RFC 1950) out. */
export type ZlibCompress = (data: Uint8Array) => Uint8Array;

// CRC-32 is shared with the safetensors checksum; re-exported for the viz entry points.
export { crc32 } from '../checksum.js';

/**
 * A zlib stream holding `data` in stored (uncompressed) deflate blocks of at most 65,535 bytes,
 * followed by the Adler-32 checksum. Valid input for any inflater.
 */
export function zlibStore(data: Uint8Array): Uint8Array {
  const blocks = Math.max(1, Math.ceil(data.length / 65535));
  const out = new Uint8Array(2 + data.length + 5 * blocks + 4);
  out[0] = 0x78; // deflate, 32K window
  out[1] = 0x01; // no preset dictionary, fastest level; (0x78 << 8 | 0x01) % 31 === 0
  let o = 2;
  for (let b = 0; b < blocks; b++) {
    const chunk = data.subarray(b * 65535, Math.min(data.length, (b + 1) * 65535));
    out[o++] = b === blocks - 1 ? 1 : 0; // BFINAL on the last block, BTYPE 00 (stored)
    out[o++] = chunk.length & 0xff;
    out[o++] = chunk.length >>> 8;
    out[o++] = ~chunk.length & 0xff;
    out[o++] = (~chunk.length >>> 8) & 0xff;
    out.set(chunk, o);
    o += chunk.length;
  }
  let a = 1;
  let s = 0;
  for (const v of data) {
    a = (a + v) % 65521;
    s = (s + a) % 65521;
  }
  new DataView(out.buffer).setUint32(o, ((s << 16) | a) >>> 0);
  return out;
}

const COLOR_TYPE = { 1: 0, 3: 2, 4: 6 } as const;

/** The PNG file bytes of `image`. */
export function encodePng(image: Image, compress: ZlibCompress = zlibStore): Uint8Array {
  const { width, height, channels, data } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`encodePng: width and height must be positive integers, got ${width} x ${height}`);
  }
  if (!(channels in COLOR_TYPE)) throw new Error(`encodePng: channels must be 1, 3 or 4, got ${channels}`);
  const stride = width * channels;
  if (data.length !== stride * height) {
    throw new Error(`encodePng: ${width} x ${height} x ${channels} needs ${stride * height} bytes, got ${data.length}`);
  }
  // Every scanline gets filter type 0 (none): simple, and deflate still finds the runs.
  const raw = new Uint8Array((stride + 1) * height);
  for (let y = 0; y < height; y++) raw.set(data.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  const header = new Uint8Array(13);
  const hv = new DataView(header.buffer);
  hv.setUint32(0, width);
  hv.setUint32(4, height);
  header.set([8, COLOR_TYPE[channels], 0, 0, 0], 8); // bit depth, colour type, compression, filter, interlace
  const chunks = [chunk('IHDR', header), chunk('IDAT', compress(raw)), chunk('IEND', new Uint8Array(0))];
  const signature = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);
  const out = new Uint8Array(signature.length + chunks.reduce((n, c) => n + c.length, 0));
  out.set(signature);
  let o = signature.length;
  for (const c of chunks) out.set(c, (o += c.length) - c.length);
  return out;
}

/** length, type, data, CRC of type + data. */
function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  const typeBytes = Uint8Array.from(type, (ch) => ch.charCodeAt(0));
  view.setUint32(0, data.length);
  out.set(typeBytes, 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(typeBytes, data));
  return out;
}
