/**
 * The Tokenizer contract, and the encoding rules every vocabulary-based tokenizer shares: ids
 * for pieces, unknown handling, <bos>/<eos>, padding and truncation to a length, decoding. A
 * tokenizer only says how text becomes pieces and pieces become text (CharTokenizer, WordTokenizer;
 * a BPE tokenizer plugs in the same way with merges as its `tokenize`).
 */

import { BOS_ID, EOS_ID, MASK_ID, PAD_ID, UNK_ID, Vocabulary } from './vocab.js';

/** Options of a tokenizer's `encode` and `encodeBatch`. */
export interface EncodeOptions {
  /** Prepend <bos>. Default false. */
  bos?: boolean;
  /** Append <eos>. Default false. */
  eos?: boolean;
  /**
   * Exact output length: longer text is truncated (the end is dropped; <eos> is kept when
   * requested), shorter is padded with <pad> (id 0) at the end.
   */
  length?: number;
}

/** Options of a tokenizer's `decode`. */
export interface DecodeOptions {
  /** Drop <pad>, <bos>, <eos> and <mask> (default true). <unk> is always shown, as '<unk>'. */
  skipSpecial?: boolean;
}

/** Several texts as one id matrix, ready for `kiln.tensor(ids, shape)`. */
export interface EncodedBatch {
  /** int32 [texts, length], row-major, padded with 0 (<pad>). */
  ids: Int32Array;
  shape: [number, number];
  /** Non-padding tokens per row. [texts] */
  lengths: Int32Array;
}

/** What to do with a piece that is not in the vocabulary. */
export type UnknownPolicy = 'unk' | 'skip' | 'error';

/** Text <-> token ids. */
export interface Tokenizer {
  /** Entries, special tokens included: the size of an embedding table for this tokenizer. */
  readonly vocabSize: number;
  readonly padId: number;
  readonly unkId: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly maskId: number;
  /** The pieces `text` is cut into, before they become ids. */
  tokenize(text: string): string[];
  /** text -> int32 ids [pieces (+ bos/eos)] or [options.length] */
  encode(text: string, options?: EncodeOptions): Int32Array;
  /** ids [k] -> text */
  decode(ids: ArrayLike<number>, options?: DecodeOptions): string;
  /** texts [n] -> ids [n, options.length ?? longest] */
  encodeBatch(texts: readonly string[], options?: EncodeOptions): EncodedBatch;
}

/** The shared encoding rules; subclasses supply the vocabulary and how text is cut and joined. */
export abstract class VocabTokenizer implements Tokenizer {
  readonly padId = PAD_ID;
  readonly unkId = UNK_ID;
  readonly bosId = BOS_ID;
  readonly eosId = EOS_ID;
  readonly maskId = MASK_ID;
  protected vocabulary: Vocabulary | undefined;

  constructor(
    protected readonly name: string,
    readonly unknown: UnknownPolicy = 'unk',
  ) {
    if (!['unk', 'skip', 'error'].includes(unknown)) throw new Error(`${name}: unknown must be 'unk', 'skip' or 'error', got ${JSON.stringify(unknown)}`);
  }

  abstract tokenize(text: string): string[];
  /** Pieces back to text. */
  protected abstract join(pieces: string[]): string;

  /** The fitted vocabulary. */
  get vocab(): Vocabulary {
    if (this.vocabulary === undefined) throw new Error(`${this.name}: call fit(text) first (or load one with ${this.name}.fromJSON)`);
    return this.vocabulary;
  }

  /** Entries, special tokens included. */
  get vocabSize(): number {
    return this.vocab.size;
  }

  /** text -> int32 ids [pieces (+ bos/eos)], or exactly [options.length] */
  encode(text: string, options: EncodeOptions = {}): Int32Array {
    if (typeof text !== 'string') throw new Error(`${this.name}.encode: expected a string, got ${typeof text}`);
    const vocab = this.vocab;
    const ids: number[] = [];
    for (const piece of this.tokenize(text)) {
      const id = vocab.id(piece);
      if (id !== undefined) ids.push(id);
      else if (this.unknown === 'unk') ids.push(UNK_ID);
      else if (this.unknown === 'error') {
        const code = [...piece].length === 1 ? ` (U+${piece.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')})` : '';
        throw new Error(`${this.name}.encode: ${JSON.stringify(piece)}${code} is not in the vocabulary (${vocab.size} tokens); fit on text that contains it, or use unknown: 'unk'`);
      }
    }
    return this.frame(ids, options);
  }

  /** Adds <bos>/<eos>, then truncates or pads to options.length. */
  private frame(ids: number[], { bos = false, eos = false, length }: EncodeOptions): Int32Array {
    const extra = (bos ? 1 : 0) + (eos ? 1 : 0);
    if (length !== undefined && (!Number.isInteger(length) || length < extra)) {
      throw new Error(`${this.name}.encode: length must be an integer >= ${extra} (room for the requested <bos>/<eos>), got ${length}`);
    }
    const content = length === undefined ? ids : ids.slice(0, length - extra);
    const out = new Int32Array(length ?? content.length + extra); // zero-filled: <pad> is 0
    let at = 0;
    if (bos) out[at++] = BOS_ID;
    out.set(content, at);
    at += content.length;
    if (eos) out[at++] = EOS_ID;
    return out;
  }

  /** ids [k] -> text; ids outside the vocabulary throw. */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const skip = options.skipSpecial ?? true;
    const vocab = this.vocab;
    const pieces: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      const token = vocab.token(id);
      if (token === undefined) throw new Error(`${this.name}.decode: id ${id} at position ${i} is not in the vocabulary (ids 0..${vocab.size - 1})`);
      if (skip && vocab.isSpecial(id) && id !== UNK_ID) continue;
      pieces.push(token);
    }
    return this.join(pieces);
  }

  /** texts [n] -> ids int32 [n, options.length ?? longest], padded with <pad> (0). */
  encodeBatch(texts: readonly string[], options: EncodeOptions = {}): EncodedBatch {
    if (!Array.isArray(texts)) throw new Error(`${this.name}.encodeBatch: expected an array of strings`);
    const rows = texts.map((t) => this.encode(t, options));
    const length = options.length ?? rows.reduce((m, r) => Math.max(m, r.length), 0);
    const ids = new Int32Array(texts.length * length);
    const lengths = new Int32Array(texts.length);
    rows.forEach((row, i) => {
      ids.set(row, i * length);
      let used = row.length;
      while (used > 0 && row[used - 1] === PAD_ID) used--;
      lengths[i] = used;
    });
    return { ids, shape: [texts.length, length], lengths };
  }
}

/** Counts the pieces of every text. */
export function countPieces(texts: string | readonly string[], tokenize: (text: string) => string[], op: string): Map<string, number> {
  const list = typeof texts === 'string' ? [texts] : texts;
  if (!Array.isArray(list) || !list.every((t) => typeof t === 'string')) throw new Error(`${op}: expected a string or an array of strings`);
  const counts = new Map<string, number>();
  for (const text of list) for (const p of tokenize(text)) counts.set(p, (counts.get(p) ?? 0) + 1);
  return counts;
}
