/** Tensor methods for gradients: `x.backward()`, `x.grad`, `x.detach()` (bodies in autograd.ts). */

import { attachMethods } from './attach.js';
import * as autograd from '../autograd.js';

declare module '../tensor.js' {
  interface Tensor {
    /** Whether this tensor requires gradients. */
    get requiresGrad(): boolean;
    /** Makes this tensor a leaf that accumulates gradients (float32), in place. Returns this. */
    setRequiresGrad(requires?: boolean): this;
    /** Back-propagates from this tensor (one element, or pass its gradient). */
    backward(grad?: Tensor): void;
    /** The accumulated gradient, as a new tensor each access (tidy frees it); null if none. */
    get grad(): Tensor | null;
    /** Clears the accumulated gradient. */
    zeroGrad(): void;
    /** The same data without gradient tracking. */
    detach(): Tensor;
  }
}

attachMethods({
  get requiresGrad() { return autograd.requiresGrad(this); },
  setRequiresGrad(requires = true) { return autograd.setRequiresGrad(this, requires); },
  backward(grad) { autograd.backward(this, grad); },
  get grad() { return autograd.gradOf(this); },
  zeroGrad() { autograd.zeroGrad(this); },
  detach() { return autograd.detach(this); },
});
