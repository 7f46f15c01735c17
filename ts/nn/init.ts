/**
 * Weight initializers. Each takes a shape and returns a fresh float32 tensor (not kept: the layer
 * that owns it keeps it). Fans follow PyTorch's convention for weights laid out [out, in, ...kernel]:
 * fanIn = in · receptive field, fanOut = out · receptive field. Layers pass `fanIn` explicitly
 * where the shape alone does not say it (a bias of shape [out] uses its weight's fanIn).
 */

import type { Tensor } from '../tensor.js';
import { full, randn, randu } from '../ops/creation.js';

/** Options of the random initializers: seed and gain. */
export interface InitOptions {
  /** Same seed, same values. Without one, the global generator (kiln.setSeed) is used. */
  seed?: number;
  /** Multiplies the bound / standard deviation (e.g. √2 for ReLU layers in the Glorot family). */
  gain?: number;
  /** Overrides the fan-in computed from the shape. */
  fanIn?: number;
  /** Overrides the fan-out computed from the shape. */
  fanOut?: number;
}

/** shape -> a new float32 tensor of that shape. */
export type Initializer = (shape: number[], options?: InitOptions) => Tensor;

/**
 * Fans of a weight laid out [out, in, ...kernel]: fanIn = in·∏kernel, fanOut = out·∏kernel.
 * A 1-D shape [n] has fanIn = fanOut = n; a scalar has 1.
 */
export function computeFans(shape: readonly number[]): { fanIn: number; fanOut: number } {
  if (shape.length === 0) return { fanIn: 1, fanOut: 1 };
  if (shape.length === 1) return { fanIn: shape[0], fanOut: shape[0] };
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: shape[1] * receptive, fanOut: shape[0] * receptive };
}

function fans(op: string, shape: number[], options: InitOptions): { fanIn: number; fanOut: number } {
  const computed = computeFans(shape);
  const fanIn = options.fanIn ?? computed.fanIn;
  const fanOut = options.fanOut ?? computed.fanOut;
  if (!(fanIn > 0) || !(fanOut > 0)) {
    throw new Error(`${op}: fans must be positive, got fanIn ${fanIn}, fanOut ${fanOut} for shape [${shape.join(', ')}]`);
  }
  return { fanIn, fanOut };
}

function symmetricUniform(shape: number[], bound: number, seed?: number): Tensor {
  return randu(shape, { low: -bound, high: bound, seed });
}

/** Glorot/Xavier uniform: U(±gain·√(6 / (fanIn + fanOut))). shape -> shape */
export const glorotUniform: Initializer = (shape, options = {}) => {
  const { fanIn, fanOut } = fans('glorotUniform', shape, options);
  return symmetricUniform(shape, (options.gain ?? 1) * Math.sqrt(6 / (fanIn + fanOut)), options.seed);
};

/** Glorot/Xavier normal: N(0, (gain·√(2 / (fanIn + fanOut)))²). shape -> shape */
export const glorotNormal: Initializer = (shape, options = {}) => {
  const { fanIn, fanOut } = fans('glorotNormal', shape, options);
  return randn(shape, { std: (options.gain ?? 1) * Math.sqrt(2 / (fanIn + fanOut)), seed: options.seed });
};

/**
 * He/Kaiming uniform (fan-in mode): U(±gain·√(3 / fanIn)), gain √2 by default (ReLU), as
 * PyTorch's kaiming_uniform_(nonlinearity='relu'). shape -> shape
 */
export const heUniform: Initializer = (shape, options = {}) => {
  const { fanIn } = fans('heUniform', shape, options);
  return symmetricUniform(shape, (options.gain ?? Math.SQRT2) * Math.sqrt(3 / fanIn), options.seed);
};

/** He/Kaiming normal (fan-in mode): N(0, (gain / √fanIn)²), gain √2 by default. shape -> shape */
export const heNormal: Initializer = (shape, options = {}) => {
  const { fanIn } = fans('heNormal', shape, options);
  return randn(shape, { std: (options.gain ?? Math.SQRT2) / Math.sqrt(fanIn), seed: options.seed });
};

/**
 * U(±1/√fanIn): PyTorch's default for Linear weights and biases (kaiming_uniform_ with a = √5
 * works out to exactly this bound). `gain` scales the bound. shape -> shape
 */
export const fanInUniform: Initializer = (shape, options = {}) => {
  const { fanIn } = fans('fanInUniform', shape, options);
  return symmetricUniform(shape, (options.gain ?? 1) / Math.sqrt(fanIn), options.seed);
};

/** Standard normal N(0, gain²) (PyTorch's Embedding default). shape -> shape */
export const normal: Initializer = (shape, options = {}) => randn(shape, { std: options.gain ?? 1, seed: options.seed });

/** All zeros. shape -> shape */
export const zeros: Initializer = (shape) => full(shape, 0);

/** All ones. shape -> shape */
export const ones: Initializer = (shape) => full(shape, 1);

/** PyTorch's name for glorotUniform. */
export const xavierUniform = glorotUniform;
/** PyTorch's name for glorotNormal. */
export const xavierNormal = glorotNormal;
/** PyTorch's name for heUniform. */
export const kaimingUniform = heUniform;
/** PyTorch's name for heNormal. */
export const kaimingNormal = heNormal;

/** The initializers by name, for configs: `new Linear(4, 8, { init: 'heNormal' })`. */
export const initializers = {
  glorotUniform,
  glorotNormal,
  xavierUniform,
  xavierNormal,
  heUniform,
  heNormal,
  kaimingUniform,
  kaimingNormal,
  fanInUniform,
  normal,
  zeros,
  ones,
} satisfies Record<string, Initializer>;

/** The name of a built-in initializer (a key of `initializers`), as layer options and configs take it. */
export type InitializerName = keyof typeof initializers;

/** An initializer given by name or as a function; `op` names the caller in the error. */
export function resolveInit(init: InitializerName | Initializer, op: string): Initializer {
  if (typeof init === 'function') return init;
  // Own keys only: 'toString' is not an initializer.
  const found = Object.hasOwn(initializers, init) ? (initializers as Record<string, Initializer>)[init] : undefined;
  if (found === undefined) {
    throw new Error(`${op}: unknown initializer '${String(init)}' (known: ${Object.keys(initializers).join(', ')})`);
  }
  return found;
}

/**
 * A seed for the k-th tensor of a layer seeded with `seed`. Hashing (instead of seed + k) keeps
 * layers seeded 1, 2, 3... from drawing the same stream for one's bias and the next one's weight.
 */
export function deriveSeed(seed: number | undefined, k: number): number | undefined {
  if (seed === undefined) return undefined;
  if (!(Number.isSafeInteger(seed) && seed >= 0)) throw new Error(`nn: a layer's seed must be a non-negative integer, got ${String(seed)}`);
  let h = Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(k + 1, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}
