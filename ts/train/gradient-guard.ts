/**
 * The non-finite gradient guard: a finite loss can still have a NaN or infinite gradient
 * (`sqrt(mse(p, y))` at an exact fit, `log` or a fractional `pow` at 0), and one such update
 * poisons every weight it reaches. The guard looks at all gradients before the update.
 *
 * Why `sum(g · 0)`: the product is 0 for every finite element and NaN for NaN and ±Infinity, so
 * the sum is NaN exactly when some element is not finite. Unlike `sum(g)` it cannot overflow to
 * Infinity on large finite gradients, so it never cries wolf. All parameters reduce into one
 * scalar on the device and are read back together with the step's loss: one readback per step,
 * however many parameters. Only when it trips are the parameters checked one by one, to name them.
 */

import { tidy } from '../engine.js';
import type { Tensor } from '../tensor.js';
import { mul } from '../ops/elementwise.js';
import { sum } from '../ops/reduce.js';
import { stack } from '../ops/shape.js';

/** A scalar [] that is 0 when every gradient of `params` is finite and NaN otherwise (or null when no parameter has a gradient). */
export function gradientFinitenessFlag(params: readonly Tensor[]): Tensor | null {
  const grads = params.map((p) => p.grad).filter((g): g is Tensor => g !== null);
  if (grads.length === 0) return null;
  return tidy(() => sum(stack(grads.map((g) => sum(mul(g, 0))))));
}

/**
 * The parameters of `params` that have a gradient, and a flag per parameter stacked into one
 * tensor [n] (NaN where that gradient is not finite): read with the step's other values, the
 * flags both tell whether to keep an update and name the parameters that spoiled it.
 */
export function gradientFlags(params: readonly Tensor[]): { params: Tensor[]; flags: Tensor } | null {
  const withGrad = params.filter((p) => p.grad !== null);
  if (withGrad.length === 0) return null;
  return { params: withGrad, flags: tidy(() => stack(withGrad.map((p) => sum(mul(p.grad!, 0))))) };
}

/** A scalar [] per parameter with a gradient: NaN where that gradient is not finite (see the top of the file). */
function perParameterFlags(params: readonly Tensor[]): Array<[Tensor, Tensor]> {
  return params.filter((p) => p.grad !== null).map((p) => [p, tidy(() => sum(mul(p.grad!, 0)))]);
}

/** The parameters among `params` whose gradient holds NaN or ±Infinity, read with `await t.data()` (one read per parameter: the slow path, for the message; it also runs on WebGPU in a page). */
export async function nonFiniteGradientsAsync(params: readonly Tensor[]): Promise<Tensor[]> {
  const flags = perParameterFlags(params);
  try {
    const values = await Promise.all(flags.map(([, f]) => f.data()));
    return flags.filter((_, i) => Number.isNaN(values[i][0])).map(([p]) => p);
  } finally {
    for (const [, f] of flags) f.dispose();
  }
}

/** "w1 [2, 16], b1 [16]": names from the model's state dict where it has them, else the position in the optimizer. */
export function describeParameters(bad: readonly Tensor[], all: readonly Tensor[], names: ReadonlyMap<Tensor, string>): string {
  const shown = bad.slice(0, 8).map((p) => `${names.get(p) ?? `parameter ${all.indexOf(p)}`} [${p.shape.join(', ')}]`);
  return shown.join(', ') + (bad.length > 8 ? ` and ${bad.length - 8} more` : '');
}
