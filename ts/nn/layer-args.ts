/**
 * The argument checks of layer constructors. A constructor checks its own arguments before it
 * builds any tensor or inner layer, so a bad option is reported as Keras and PyTorch users expect:
 * the layer, the option, the value and what is allowed,
 *
 *   LSTM: hiddenSize must be a positive integer, got -1
 *   BatchNorm2d: momentum must be in [0, 1], got '0.1'
 *
 * rather than by the op or inner layer that would trip over it later ("randu: ...", "Linear:
 * inFeatures must be ..."). The weights are then built in `build`, so that an error no argument
 * check can foresee (not enough memory for [2^20, 2^20] weights) names the layer too.
 *
 * Why a helper each constructor calls, not one wrapper around every exported class: a Proxy
 * around the classes hid them from TypeDoc, and decorators do not run under Node 20 / vite-node.
 */

import { asCalled } from '../named-errors.js';
import { Tensor } from '../tensor.js';
import { initializers, resolveInit, type Initializer, type InitializerName } from './init.js';

/** A value as an error message shows it: `-1`, `'tanh'`, `a float32 Tensor [2, 3]`, `null`. */
function showValue(value: unknown): string {
  if (typeof value === 'string') return `'${value.length > 40 ? `${value.slice(0, 40)}...` : value}'`;
  if (typeof value === 'number' || typeof value === 'boolean' || value === undefined || value === null) return String(value);
  if (value instanceof Tensor) return value.isDisposed ? 'a disposed Tensor' : `${value.dtype.startsWith('i') ? 'an' : 'a'} ${value.dtype} Tensor [${value.shape.join(', ')}]`;
  if (Array.isArray(value)) {
    const text = `[${value.map((v) => (typeof v === 'number' ? String(v) : typeof v)).join(', ')}]`;
    return text.length > 60 ? `an array of ${value.length}` : text;
  }
  if (typeof value === 'function') return 'a function';
  if (ArrayBuffer.isView(value)) return `${value.constructor.name.startsWith('I') ? 'an' : 'a'} ${value.constructor.name}`;
  return typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype ? 'an object' : `a ${(value as object).constructor?.name ?? 'value'}`;
}

/**
 * The value an error shows: what the user passed, unless it was left out and the default was
 * used (`null` falls back to the default like `undefined`, but "got null" is what they wrote).
 */
function passed(value: unknown, used: unknown): unknown {
  return used === undefined ? value : used;
}

/** The checks of one layer's constructor; each returns the value (or its default) when allowed. */
export class LayerArgs {
  /** `layer`: the name errors start with, the class the user called ('LSTM', 'BatchNorm2d'). */
  constructor(readonly layer: string) {}

  /** Throws "<layer>: <option> must be <allowed>, got <value>". */
  fail(option: string, allowed: string, value: unknown): never {
    throw new Error(`${this.layer}: ${option} must be ${allowed}, got ${showValue(value)}`);
  }

  /** The options object: `undefined` is `{}`; anything but a plain object (null, a number, a Tensor) is refused. */
  options<T extends object>(value: T | undefined): T {
    if (value === undefined) return {} as T;
    const proto = value === null || typeof value !== 'object' ? undefined : Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) this.fail('options', 'an object', value);
    return value;
  }

  /** A size or count: an integer from 1 up (`fallback` when left out). */
  positiveInt(option: string, value: unknown, fallback?: number): number {
    const v = value ?? fallback;
    if (!Number.isSafeInteger(v) || (v as number) < 1) this.fail(option, 'a positive integer', passed(value, v));
    return v as number;
  }

  /** A number in [low, high] (or [low, high) with `highOpen`), e.g. a probability or a momentum. */
  inRange(option: string, value: unknown, fallback: number, low: number, high: number, highOpen = false): number {
    const v = value ?? fallback;
    if (typeof v !== 'number' || !(v >= low && (highOpen ? v < high : v <= high))) this.fail(option, `in [${low}, ${high}${highOpen ? ')' : ']'}`, passed(value, v));
    return v;
  }

  /** A dropout probability: [0, 1). */
  dropout(option: string, value: unknown, fallback: number): number {
    return this.inRange(option, value, fallback, 0, 1, true);
  }

  /** A finite number above 0, such as an epsilon. */
  positive(option: string, value: unknown, fallback: number): number {
    const v = value ?? fallback;
    if (typeof v !== 'number' || !(v > 0 && v < Infinity)) this.fail(option, '> 0 and finite', passed(value, v));
    return v;
  }

  /** true or false (`fallback` when left out). */
  flag(option: string, value: unknown, fallback: boolean): boolean {
    const v = value ?? fallback;
    if (typeof v !== 'boolean') this.fail(option, 'true or false', passed(value, v));
    return v;
  }

  /** A seed (a non-negative safe integer, as the random ops take) or undefined (draw from the global generator). */
  seed(value: unknown, option = 'seed'): number | undefined {
    if (value !== undefined && !(Number.isSafeInteger(value) && (value as number) >= 0)) this.fail(option, 'a non-negative integer (at most 2^53)', value);
    return value as number | undefined;
  }

  /** One of `allowed` (`fallback` when left out). */
  oneOf<T extends string>(option: string, value: unknown, allowed: readonly T[], fallback: T): T {
    const v = value ?? fallback;
    if (!allowed.includes(v as T)) this.fail(option, allowed.map((a) => `'${a}'`).join(', ').replace(/, ([^,]*)$/, ' or $1'), passed(value, v));
    return v as T;
  }

  /** An initializer: a function or the name of one of `nn.init`'s (`fallback` when left out). */
  init(option: string, value: unknown, fallback: Initializer): Initializer {
    if (value === undefined) return fallback;
    if (typeof value !== 'function' && typeof value !== 'string') this.fail(option, `an initializer function or the name of one (${Object.keys(initializers).join(', ')})`, value);
    return resolveInit(value as InitializerName | Initializer, this.layer);
  }

  /** An array or a typed array of numbers (each element is the caller's to check); `allowed` says what they must be. */
  numbers(option: string, value: unknown, allowed: string): ArrayLike<number> {
    if (!Array.isArray(value) && !(ArrayBuffer.isView(value) && !(value instanceof DataView))) this.fail(option, `an array or a typed array of ${allowed}`, value);
    return value as ArrayLike<number>;
  }

  /**
   * Runs `make` (building the weights or inner layers, after the checks) so that what it throws
   * names this layer: "LSTM: cannot allocate ... (raised by randu inside Linear)".
   */
  build<T>(make: () => T): T {
    // A 'function' scope: the outermost constructor names the error (not the innermost, as in forward).
    return asCalled(this.layer, 'function', make);
  }
}

/** The argument checks of the layer `layer` (see the file comment). */
export function layerArgs(layer: string): LayerArgs {
  return new LayerArgs(layer);
}
