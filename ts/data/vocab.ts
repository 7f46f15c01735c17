/**
 * Vocabulary: the id <-> token table every tokenizer shares. The special tokens always take the
 * first ids, in a fixed order, so <pad> is 0 (zero-filled id arrays are padding) and a model's
 * embedding rows for them do not move when the vocabulary is rebuilt from other text.
 */

/** Special tokens, by id: <pad> 0, <unk> 1, <bos> 2, <eos> 3, <mask> 4. */
export const SPECIAL_TOKENS = ['<pad>', '<unk>', '<bos>', '<eos>', '<mask>'] as const;
/** The id of <pad>, the padding token. */
export const PAD_ID = 0;
/** The id of <unk>, which stands for pieces missing from the vocabulary. */
export const UNK_ID = 1;
/** The id of <bos>, the beginning-of-sequence token. */
export const BOS_ID = 2;
/** The id of <eos>, the end-of-sequence token. */
export const EOS_ID = 3;
/** The id of <mask>, for masked-token training. */
export const MASK_ID = 4;

/** Options of `Vocabulary.fromCounts`: frequency cut-off and size limit. */
export interface VocabularyOptions {
  /** Keep tokens seen at least this often. Default 1. */
  minCount?: number;
  /** At most this many entries, special tokens included; the most frequent tokens win. */
  maxSize?: number;
}

/** An immutable id <-> token table whose first entries are SPECIAL_TOKENS. */
export class Vocabulary {
  /** Tokens by id. */
  readonly tokens: readonly string[];
  readonly #ids: Map<string, number>;

  /** `tokens`: the ordinary tokens (no specials), in id order; they get ids from 5 on. */
  constructor(tokens: Iterable<string>) {
    const all: string[] = [...SPECIAL_TOKENS];
    this.#ids = new Map(all.map((t, i) => [t, i]));
    for (const t of tokens) {
      if (typeof t !== 'string' || t.length === 0) throw new Error(`Vocabulary: tokens must be non-empty strings, got ${JSON.stringify(t)}`);
      if (this.#ids.has(t)) throw new Error(`Vocabulary: duplicate token ${JSON.stringify(t)}${(SPECIAL_TOKENS as readonly string[]).includes(t) ? ' (special tokens are added automatically)' : ''}`);
      this.#ids.set(t, all.length);
      all.push(t);
    }
    this.tokens = all;
  }

  /**
   * A vocabulary from token counts. Order: specials, then by count (most frequent first), ties
   * in code-unit order of the token, so the same text always gives the same ids whatever order
   * its tokens were first seen in.
   */
  static fromCounts(counts: Map<string, number>, options: VocabularyOptions = {}): Vocabulary {
    const minCount = options.minCount ?? 1;
    const maxSize = options.maxSize ?? Infinity;
    if (!(minCount >= 1)) throw new Error(`Vocabulary: minCount must be >= 1, got ${minCount}`);
    if (!(maxSize >= SPECIAL_TOKENS.length)) {
      throw new Error(`Vocabulary: maxSize must be at least ${SPECIAL_TOKENS.length} (the special tokens ${SPECIAL_TOKENS.join(' ')}), got ${maxSize}`);
    }
    const specials = new Set<string>(SPECIAL_TOKENS);
    const kept = [...counts].filter(([t, c]) => c >= minCount && !specials.has(t));
    kept.sort(([ta, ca], [tb, cb]) => cb - ca || (ta < tb ? -1 : ta > tb ? 1 : 0));
    return new Vocabulary(kept.slice(0, maxSize - SPECIAL_TOKENS.length).map(([t]) => t));
  }

  /** Entries, special tokens included. */
  get size(): number {
    return this.tokens.length;
  }

  /** The id of `token`, or undefined. */
  id(token: string): number | undefined {
    return this.#ids.get(token);
  }

  /** The token with id `id`, or undefined. */
  token(id: number): string | undefined {
    return this.tokens[id];
  }

  /** Whether `id` is one of the special tokens. */
  isSpecial(id: number): boolean {
    return id >= 0 && id < SPECIAL_TOKENS.length;
  }
}
