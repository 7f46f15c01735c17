/**
 * Character- and word-level tokenizers. Both share the special tokens (<pad> 0, <unk> 1, <bos> 2,
 * <eos> 3, <mask> 4) and the encoding rules of VocabTokenizer; they differ only in how text is cut.
 *
 *   const tok = new WordTokenizer({ minCount: 2, maxSize: 10_000 }).fit(trainTexts);
 *   const { ids, shape } = tok.encodeBatch(texts, { length: 64, bos: true, eos: true });
 *   const x = kiln.tensor(ids, shape); // int32 [texts, 64]
 */

import { countPieces, VocabTokenizer, type UnknownPolicy } from './tokenizer.js';
import { SPECIAL_TOKENS, Vocabulary, type VocabularyOptions } from './vocab.js';

/** Options of the CharTokenizer and WordTokenizer constructors: the vocabulary's, plus what to do with unknown pieces. */
export interface TokenizerOptions extends VocabularyOptions {
  /** Pieces missing from the vocabulary become <unk> ('unk', default), are dropped ('skip'), or throw ('error'). */
  unknown?: UnknownPolicy;
}

/** A saved tokenizer: what toJSON returns and fromJSON reads. */
export interface TokenizerState {
  type: 'char' | 'word';
  /** The ordinary tokens in id order (ids from 5; the special tokens are implied). */
  tokens: string[];
  unknown: UnknownPolicy;
  lowercase?: boolean;
}

function checkState(state: TokenizerState, type: TokenizerState['type'], op: string): void {
  if (!state || state.type !== type || !Array.isArray(state.tokens)) {
    throw new Error(`${op}: expected the output of toJSON() of a ${type} tokenizer, got ${JSON.stringify(state)?.slice(0, 80)}`);
  }
}

/**
 * One token per Unicode code point (so an emoji is one token, not two UTF-16 halves).
 * decode(encode(text)) === text for text made of known characters.
 */
export class CharTokenizer extends VocabTokenizer {
  readonly #options: VocabularyOptions;

  constructor(options: TokenizerOptions = {}) {
    super('CharTokenizer', options.unknown);
    this.#options = { minCount: options.minCount, maxSize: options.maxSize };
  }

  /** Builds the vocabulary from the characters of `text` (one string or several). Returns this. */
  fit(text: string | readonly string[]): this {
    this.vocabulary = Vocabulary.fromCounts(countPieces(text, (t) => this.tokenize(t), 'CharTokenizer.fit'), this.#options);
    return this;
  }

  /** text -> its code points */
  tokenize(text: string): string[] {
    return Array.from(text);
  }

  protected join(pieces: string[]): string {
    return pieces.join('');
  }

  /** The vocabulary and settings as plain JSON, to save next to a model. */
  toJSON(): TokenizerState {
    return { type: 'char', tokens: this.vocab.tokens.slice(SPECIAL_TOKENS.length), unknown: this.unknown };
  }

  /** A fitted tokenizer from `toJSON()` output. */
  static fromJSON(state: TokenizerState): CharTokenizer {
    checkState(state, 'char', 'CharTokenizer.fromJSON');
    const tok = new CharTokenizer({ unknown: state.unknown });
    tok.vocabulary = new Vocabulary(state.tokens);
    return tok;
  }
}

/** Options of the WordTokenizer constructor. */
export interface WordTokenizerOptions extends TokenizerOptions {
  /** Lowercase text before splitting (so 'The' and 'the' are one token). Default true. */
  lowercase?: boolean;
}

/**
 * Words: runs of letters, digits, marks and '_' (with inner apostrophes, so "don't" stays whole);
 * every other non-space character (punctuation, symbols) is a token of its own.
 */
const WORD = /[\p{L}\p{M}\p{N}_]+(?:['’][\p{L}\p{M}\p{N}_]+)*|\S/gu;
/** Decoding glues these to the previous token ("world !" -> "world!")... */
const NO_SPACE_BEFORE = new Set(['.', ',', '!', '?', ';', ':', '%', ')', ']', '}', '…']);
/** ...and these to the next ("( a" -> "(a"). */
const NO_SPACE_AFTER = new Set(['(', '[', '{']);

/**
 * Word-level tokenizer with a frequency-ranked vocabulary (minCount, maxSize). Decoding joins
 * words with spaces and reattaches common punctuation; whitespace and (with lowercase) case are
 * not preserved.
 */
export class WordTokenizer extends VocabTokenizer {
  readonly lowercase: boolean;
  readonly #options: VocabularyOptions;

  constructor(options: WordTokenizerOptions = {}) {
    super('WordTokenizer', options.unknown);
    this.lowercase = options.lowercase ?? true;
    this.#options = { minCount: options.minCount, maxSize: options.maxSize };
  }

  /** Builds the vocabulary from the words of the training text(s). Returns this. */
  fit(texts: string | readonly string[]): this {
    this.vocabulary = Vocabulary.fromCounts(countPieces(texts, (t) => this.tokenize(t), 'WordTokenizer.fit'), this.#options);
    return this;
  }

  /** text -> words and punctuation marks */
  tokenize(text: string): string[] {
    return (this.lowercase ? text.toLowerCase() : text).match(WORD) ?? [];
  }

  protected join(pieces: string[]): string {
    let out = '';
    pieces.forEach((p, i) => {
      if (i > 0 && !NO_SPACE_BEFORE.has(p) && !NO_SPACE_AFTER.has(pieces[i - 1])) out += ' ';
      out += p;
    });
    return out;
  }

  /** The vocabulary and settings as plain JSON, to save next to a model. */
  toJSON(): TokenizerState {
    return { type: 'word', tokens: this.vocab.tokens.slice(SPECIAL_TOKENS.length), unknown: this.unknown, lowercase: this.lowercase };
  }

  /** A fitted tokenizer from `toJSON()` output. */
  static fromJSON(state: TokenizerState): WordTokenizer {
    checkState(state, 'word', 'WordTokenizer.fromJSON');
    const tok = new WordTokenizer({ unknown: state.unknown, lowercase: state.lowercase });
    tok.vocabulary = new Vocabulary(state.tokens);
    return tok;
  }
}
