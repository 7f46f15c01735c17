/**
 * The data layer: loading (IDX, MNIST), splitting, normalization, datasets and loaders,
 * augmentation and tokenizers. Everything before the data becomes tensors works on typed arrays.
 * browser.ts holds the part without a file system; this adds the loaders that read files.
 */

export * from './browser.js';
// Node's parseIdx also decompresses gzipped bytes (zlib); it takes the place of the browser's.
export { parseIdx, readIdx } from './idx-file.js';
export { loadMnist, type Mnist, type MnistOptions } from './mnist.js';
export { loadCora } from './cora-file.js';
