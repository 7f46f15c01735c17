/** Image output without a file system: encode a grid to PNG bytes (for a Blob, a download, a canvas). */

export { encodePng, zlibStore, crc32, type Image, type ZlibCompress } from './png.js';
export { imageGrid, type GridOptions, type HostImages } from './grid.js';
