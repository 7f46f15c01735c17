/**
 * Reverse-mode autograd. The graph is recorded and walked in Rust: `backward` is one call, and
 * gradients reach TypeScript only when asked for with `t.grad`.
 */

import { backend } from './engine.js';
import { Tensor, wrap } from './tensor.js';
import { handleOf } from './ops/util.js';

/** Makes `x` a leaf that accumulates gradients (float32 only), in place. Returns x. */
export function setRequiresGrad<T extends Tensor>(x: T, requires = true): T {
  const b = backend();
  b.impl.setRequiresGrad(handleOf(x, 'setRequiresGrad', b), requires);
  return x;
}

/** Whether x requires gradients (a leaf set so, or the result of an op on one). */
export function requiresGrad(x: Tensor): boolean {
  const b = backend();
  return b.impl.requiresGrad(handleOf(x, 'requiresGrad', b));
}

/**
 * Back-propagates from `x`, adding d(x)/d(leaf) into every leaf's gradient. `grad` is dx (same
 * shape as x); it may be omitted when x has one element. Each graph can be walked once; its
 * saved tensors are freed by the walk.
 */
export function backward(x: Tensor, grad?: Tensor): void {
  const b = backend();
  b.impl.backward(handleOf(x, 'backward', b), grad === undefined ? -1 : handleOf(grad, 'backward', b, 'grad'));
}

/** The accumulated gradient of leaf x as a new tensor (null if none yet). Same shape as x. */
export function gradOf(x: Tensor): Tensor | null {
  const b = backend();
  const h = b.impl.grad(handleOf(x, 'grad', b));
  return h < 0 ? null : wrap(h, b);
}

/** Clears the accumulated gradient of leaf x. */
export function zeroGrad(x: Tensor): void {
  const b = backend();
  b.impl.zeroGrad(handleOf(x, 'zeroGrad', b));
}

/** The same data, cut off from the graph (no gradient flows through it). */
export function detach(x: Tensor): Tensor {
  const b = backend();
  return wrap(b.impl.detach(handleOf(x, 'detach', b)), b);
}

/**
 * Overwrites `target`'s values with `source`'s, in place: target keeps its identity (the same
 * parameter for optimizers and autograd). Shapes must match; float32. Returns target.
 */
export function assign<T extends Tensor>(target: T, source: Tensor): T {
  const b = backend();
  b.impl.assign(handleOf(target, 'assign', b, 'target'), handleOf(source, 'assign', b, 'source'));
  return target;
}

/** Runs fn with gradient recording off (inference, optimizer updates); restores it after. */
export function noGrad<T>(fn: () => T): T {
  const b = backend();
  const previous = b.impl.setGradEnabled(false);
  try {
    return fn();
  } finally {
    b.impl.setGradEnabled(previous);
  }
}
