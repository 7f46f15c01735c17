/**
 * The data layer without a file system (the browser entry's `kiln.data`): parsing IDX and Cora
 * from bytes and text, splitting, normalization, datasets and loaders, augmentation and
 * tokenizers. The Node entry (index.ts) adds the loaders that read files.
 */

export { Random, deriveSeed, type Seed } from './random.js';
export { parseIdx, type IdxArray, type IdxData, type IdxDType } from './idx.js';
export { trainValTestSplit, gatherRows, gatherLabels, type Split, type SplitOptions } from './split.js';
export { scale, Standardizer, type StandardizerOptions, type StandardizerState } from './normalize.js';
export { TensorDataset, type Dataset, type HostBatch, type Labels } from './dataset.js';
export { DataLoader, type DataLoaderOptions, type TensorBatch } from './loader.js';
export { randomFlipHorizontal, randomCropWithPadding, gaussianNoise, compose, type BatchTransform, type AugmentOptions, type CropOptions } from './augment.js';
export { Vocabulary, SPECIAL_TOKENS, PAD_ID, UNK_ID, BOS_ID, EOS_ID, MASK_ID, type VocabularyOptions } from './vocab.js';
export { VocabTokenizer, type Tokenizer, type EncodeOptions, type DecodeOptions, type EncodedBatch, type UnknownPolicy } from './tokenizer.js';
export { CharTokenizer, WordTokenizer, type TokenizerOptions, type WordTokenizerOptions, type TokenizerState } from './tokenize.js';
// graph data: the Cora citation graph and the Planetoid split
export { parseCora, planetoidSplit, type Cora, type PlanetoidSplitOptions } from './cora.js';
