/**
 * CRC-32 (ISO 3309 / IEEE, the checksum of zip, gzip and PNG), shared by the PNG encoder's chunks
 * and the data checksum in Kiln's safetensors files. Written here rather than imported because
 * both also run in browsers, where node:zlib's crc32 does not exist; tests check it against it.
 */

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 of the given byte ranges, in order, as one stream (an unsigned 32-bit integer). */
export function crc32(...parts: Uint8Array[]): number {
  let c = 0xffffffff;
  for (const bytes of parts) for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** The CRC-32 as 8 lowercase hex digits, the form stored in file metadata. */
export function crc32Hex(...parts: Uint8Array[]): string {
  return crc32(...parts).toString(16).padStart(8, '0');
}
