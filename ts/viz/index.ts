/**
 * Image output: grids of images as PNG (encoder in png.ts, layout in grid.ts). The Node entry
 * adds files.ts (savePng, saveImageGrid); the browser entry has only the bytes (browser.ts).
 */

export * from './browser.js';
export { savePng, saveImageGrid } from './files.js';
