/** Reading the scalar constants of a fused pattern (a scale, GELU's 0.5) at run time. */

import type { Tensor } from '../../tensor.js';
import { hostValues } from '../constants.js';

/**
 * The value of a one-element float32 tensor, or undefined for anything else. Asked at every run
 * (a float initializer is a parameter a user may change); a model's constant is read back once
 * until it is written (constants.ts).
 */
export function scalarValue(t: Tensor): number | undefined {
  if (t.dtype !== 'float32' || t.size !== 1) return undefined;
  return hostValues(t)[0];
}

/** Whether `t` is a scalar within float32 rounding of `expected`. */
export function isScalar(t: Tensor | undefined, expected: number): boolean {
  const v = t === undefined ? undefined : scalarValue(t);
  return v !== undefined && Math.abs(v - expected) <= 1e-6 * Math.abs(expected);
}
