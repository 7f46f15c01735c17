/**
 * How the op modules' methods reach `Tensor` without `tensor.ts` importing them (which made an
 * import circle: every op module imports `Tensor`). Each file in this folder declares its methods
 * on the `Tensor` interface (declaration merging, so types and docs read as if written in the
 * class) and installs their bodies on the prototype with `attachMethods`. `tensor-methods/index.ts`
 * loads them all; the package entries load it (see docs/architecture.md, "TypeScript").
 */

import { Tensor } from '../tensor.js';
import { namedFunction } from '../named-errors.js';

/**
 * Installs `methods` (plain methods and getters) on `Tensor.prototype` as a class body would:
 * not enumerable, so `{ ...tensor }` and `for...in` still see no methods; errors name the method. The type ties each body
 * to the declaration merged into `Tensor`, so a signature that drifts fails to compile.
 */
export function attachMethods<K extends keyof Tensor>(methods: Pick<Tensor, K> & ThisType<Tensor>): void {
  for (const [name, descriptor] of Object.entries(Object.getOwnPropertyDescriptors(methods))) {
    // `x.transpose()` names transpose in its errors, not the op it forwards to (named-errors.ts).
    if (typeof descriptor.value === 'function') descriptor.value = namedFunction(name, descriptor.value as () => unknown);
    Object.defineProperty(Tensor.prototype, name, { ...descriptor, enumerable: false });
  }
}
