/**
 * The seeded generator behind every random choice in the data layer (shuffles, splits,
 * augmentations). It is plain JavaScript on purpose: these choices are made per sample while
 * batches are assembled, where a call across the native boundary would cost more than the number.
 */

/** A seed: any integer (it is reduced to 32 bits). Omitted seeds are drawn from Math.random. */
export type Seed = number;

/** Checks a seed option and supplies a fresh one when it is omitted. */
export function resolveSeed(op: string, seed: Seed | undefined): number {
  if (seed === undefined) return Math.floor(Math.random() * 2 ** 32);
  if (!Number.isInteger(seed)) throw new Error(`${op}: seed must be an integer, got ${String(seed)}`);
  return seed >>> 0;
}

/**
 * A seed for sub-stream `stream` of `seed` (epoch k of a loader, class c of a split). Hashing
 * rather than adding keeps neighbouring streams uncorrelated: mulberry32 seeded with s and s + 1
 * would otherwise start one step apart on the same sequence.
 */
export function deriveSeed(seed: number, stream: number): number {
  let h = (seed ^ Math.imul(stream + 1, 0x9e3779b9)) >>> 0;
  // murmur3's 32-bit finalizer: every input bit flips about half the output bits
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * mulberry32: a small, fast 32-bit generator with good statistical quality for shuffling and
 * augmentation (not for cryptography). Same seed, same sequence, on every platform.
 */
export class Random {
  #state: number;
  #spareNormal: number | undefined;

  /** `seed`: an integer; omitted, a random one. */
  constructor(seed?: Seed) {
    this.#state = resolveSeed('Random', seed);
  }

  /** A float in [0, 1) with 32 random bits. */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n), n <= 2^32. The modulo bias is below n / 2^32, negligible for data sizes. */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** A standard normal sample (Box-Muller; the second value of each pair is kept for the next call). */
  normal(): number {
    if (this.#spareNormal !== undefined) {
      const z = this.#spareNormal;
      this.#spareNormal = undefined;
      return z;
    }
    // 1 - next() is in (0, 1], so the log never sees 0
    const r = Math.sqrt(-2 * Math.log(1 - this.next()));
    const theta = 2 * Math.PI * this.next();
    this.#spareNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** Shuffles `values` in place (Fisher-Yates: every order equally likely) and returns it. */
  shuffle<T extends { length: number; [i: number]: number }>(values: T): T {
    for (let i = values.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const v = values[i];
      values[i] = values[j];
      values[j] = v;
    }
    return values;
  }

  /** 0..n-1 in random order. -> Int32Array [n] */
  permutation(n: number): Int32Array {
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = i;
    return this.shuffle(out);
  }
}
