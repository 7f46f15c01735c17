/**
 * CRC-32 (the IEEE polynomial of zip, gzip and PNG), used to detect corrupted weights in Kiln's
 * safetensors files. Written here rather than imported because io/ also runs in browsers, where
 * node:zlib's crc32 does not exist; tests check it against node:zlib's.
 */

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/**
 * The CRC-32 of `bytes` as an unsigned 32-bit integer. Pass the CRC of the bytes before them as
 * `previous` to checksum data that arrives in pieces: crc32(b, crc32(a)) === crc32(a + b).
 */
export function crc32(bytes: Uint8Array, previous = 0): number {
  let c = (previous ^ 0xffffffff) >>> 0;
  for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** The CRC-32 as 8 lowercase hex digits, the form stored in file metadata. */
export function crc32Hex(bytes: Uint8Array): string {
  return crc32(bytes).toString(16).padStart(8, '0');
}
