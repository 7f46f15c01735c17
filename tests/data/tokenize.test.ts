/** CharTokenizer, WordTokenizer and the shared Vocabulary rules. */
import { describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { BOS_ID, CharTokenizer, EOS_ID, PAD_ID, SPECIAL_TOKENS, UNK_ID, Vocabulary, WordTokenizer, type Tokenizer } from '../../ts/data/index.js';
import { forEachBackend } from '../backends.js';
import { expectThrows, read } from '../helpers.js';

describe('Vocabulary', () => {
  it('puts the special tokens first, then tokens by count, ties in code-unit order', () => {
    const v = Vocabulary.fromCounts(new Map([['b', 2], ['a', 2], ['c', 5], ['<pad>', 9], ['d', 1]]), { minCount: 2 });
    expect(v.tokens).toEqual([...SPECIAL_TOKENS, 'c', 'a', 'b']);
    expect([v.id('<pad>'), v.id('<unk>'), v.id('<bos>'), v.id('<eos>'), v.id('<mask>')]).toEqual([0, 1, 2, 3, 4]);
    expect(v.id('d')).toBeUndefined();
    expect(Vocabulary.fromCounts(new Map([['x', 1], ['y', 3], ['z', 2]]), { maxSize: 7 }).tokens.slice(5)).toEqual(['y', 'z']);
    expectThrows(() => Vocabulary.fromCounts(new Map(), { maxSize: 3 }), 'maxSize must be at least 5');
    expectThrows(() => new Vocabulary(['a', 'a']), 'duplicate token "a"');
    expectThrows(() => new Vocabulary(['<unk>']), 'special tokens are added automatically');
  });
});

describe('CharTokenizer', () => {
  const text = 'hello world';

  it('round-trips known text, code point by code point', () => {
    const tok = new CharTokenizer().fit(text);
    expect(tok.vocabSize).toBe(5 + 8); // h e l o ' ' w r d
    expect(tok.decode(tok.encode(text))).toBe(text);
    const emoji = new CharTokenizer().fit('a😀b');
    expect(emoji.tokenize('a😀b')).toEqual(['a', '😀', 'b']);
    expect(emoji.decode(emoji.encode('b😀a'))).toBe('b😀a');
  });

  it('orders the vocabulary by frequency, deterministically', () => {
    const tok = new CharTokenizer().fit(text);
    // l x3, o x2, then ' ' d e h r w once each in code-unit order
    expect(tok.vocab.tokens.slice(5)).toEqual(['l', 'o', ' ', 'd', 'e', 'h', 'r', 'w']);
    expect(new CharTokenizer().fit(['world', ' hello']).vocab.tokens).toEqual(tok.vocab.tokens);
  });

  it('handles unknown characters: <unk>, skip, or a clear error', () => {
    const tok = new CharTokenizer().fit('abc');
    const ids = tok.encode('abz');
    expect(ids[2]).toBe(UNK_ID);
    expect(tok.decode(ids)).toBe('ab<unk>');
    expect(tok.decode(new CharTokenizer({ unknown: 'skip' }).fit('abc').encode('azb'))).toBe('ab');
    expectThrows(() => new CharTokenizer({ unknown: 'error' }).fit('abc').encode('abé'), 'CharTokenizer.encode', '"é" (U+00E9) is not in the vocabulary');
  });

  it('saves and loads', () => {
    const tok = new CharTokenizer({ minCount: 2 }).fit('aabbbc');
    const back = CharTokenizer.fromJSON(JSON.parse(JSON.stringify(tok)));
    expect(back.vocab.tokens).toEqual(tok.vocab.tokens);
    expect(Array.from(back.encode('abc'))).toEqual(Array.from(tok.encode('abc')));
    expectThrows(() => CharTokenizer.fromJSON({ type: 'word', tokens: [], unknown: 'unk' }), 'expected the output of toJSON() of a char tokenizer');
  });
});

describe('WordTokenizer', () => {
  const corpus = ['The cat sat on the mat.', "The dog didn't sit, the cat did!", 'A cat (small) sat.'];

  it('lowercases, splits punctuation, keeps contractions, and round-trips', () => {
    const tok = new WordTokenizer().fit(corpus);
    expect(tok.tokenize("The dog didn't sit, the cat did!")).toEqual(['the', 'dog', "didn't", 'sit', ',', 'the', 'cat', 'did', '!']);
    expect(tok.decode(tok.encode('the cat sat on the mat.'))).toBe('the cat sat on the mat.');
    expect(tok.decode(tok.encode('A cat (small) sat, the dog did!'))).toBe('a cat (small) sat, the dog did!');
    const cased = new WordTokenizer({ lowercase: false }).fit(corpus);
    expect(cased.vocab.id('The')).toBeDefined();
    expect(cased.vocab.id('the')).toBeDefined();
    expect(new WordTokenizer().fit(corpus).vocab.id('The')).toBeUndefined();
  });

  it('builds the vocabulary by count with minCount and maxSize, the same every time', () => {
    const tok = new WordTokenizer({ minCount: 2 }).fit(corpus);
    // the x5, cat x3, . x2, sat x2
    expect(tok.vocab.tokens.slice(5)).toEqual(['the', 'cat', '.', 'sat']);
    expect(new WordTokenizer({ maxSize: 7 }).fit(corpus).vocab.tokens.slice(5)).toEqual(['the', 'cat']);
    expect(new WordTokenizer().fit([...corpus].reverse()).vocab.tokens).toEqual(new WordTokenizer().fit(corpus).vocab.tokens);
  });

  it('maps unseen words to <unk>', () => {
    const tok = new WordTokenizer({ minCount: 2 }).fit(corpus);
    const ids = tok.encode('The zebra sat.');
    expect(Array.from(ids)).toEqual([tok.vocab.id('the'), UNK_ID, tok.vocab.id('sat'), tok.vocab.id('.')]);
    expect(tok.decode(ids)).toBe('the <unk> sat.');
  });

  it('adds <bos>/<eos>, pads and truncates to a length', () => {
    const tok = new WordTokenizer().fit(corpus);
    const the = tok.vocab.id('the')!;
    const cat = tok.vocab.id('cat')!;
    expect(Array.from(tok.encode('the cat', { bos: true, eos: true }))).toEqual([BOS_ID, the, cat, EOS_ID]);
    expect(Array.from(tok.encode('the cat', { bos: true, eos: true, length: 6 }))).toEqual([BOS_ID, the, cat, EOS_ID, PAD_ID, PAD_ID]);
    expect(Array.from(tok.encode('the cat the cat', { eos: true, length: 3 }))).toEqual([the, cat, EOS_ID]);
    expect(Array.from(tok.encode('the cat the', { length: 2 }))).toEqual([the, cat]);
    expect(tok.decode(tok.encode('the cat', { bos: true, eos: true, length: 6 }))).toBe('the cat');
    expect(tok.decode(tok.encode('the cat', { bos: true, length: 3 }), { skipSpecial: false })).toBe('<bos> the cat');
    expectThrows(() => tok.encode('the', { bos: true, eos: true, length: 1 }), 'length must be an integer >= 2');
    expectThrows(() => tok.decode([999]), 'id 999 at position 0 is not in the vocabulary');
    expectThrows(() => new WordTokenizer().encode('x'), 'WordTokenizer: call fit(text) first');
  });

  it('saves and loads, lowercase setting included', () => {
    const tok = new WordTokenizer({ lowercase: false, minCount: 2 }).fit(corpus);
    const back = WordTokenizer.fromJSON(JSON.parse(JSON.stringify(tok)));
    expect(back.lowercase).toBe(false);
    expect(back.vocab.tokens).toEqual(tok.vocab.tokens);
  });
});

forEachBackend(() => {
  it('encodeBatch gives an int32 id matrix for an embedding lookup', async () => {
    const tok: Tokenizer = new WordTokenizer().fit(['a b c', 'a b']);
    const batch = tok.encodeBatch(['a b c', 'b', ''], { eos: true });
    expect(batch.shape).toEqual([3, 4]);
    expect(Array.from(batch.lengths)).toEqual([4, 2, 1]);
    const ids = kiln.tensor(batch.ids, batch.shape);
    expect(ids.dtype).toBe('int32');
    expect(await read(ids)).toEqual([5, 6, 7, EOS_ID, 6, EOS_ID, 0, 0, EOS_ID, 0, 0, 0]);
    const table = kiln.tensor(Float32Array.from({ length: tok.vocabSize * 2 }, (_, i) => i), [tok.vocabSize, 2]);
    const embedded = kiln.gather(table, ids);
    expect(embedded.shape).toEqual([3, 4, 2]);
    kiln.dispose([ids, table, embedded]);
    const fixed = tok.encodeBatch(['a b c', 'b'], { length: 2 });
    expect(Array.from(fixed.ids)).toEqual([5, 6, 6, 0]);
    expect(Array.from(fixed.lengths)).toEqual([2, 1]);
  });
});
