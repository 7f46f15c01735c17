/**
 * Reverse-mode autograd. The graph is recorded and walked in Rust: `backward` is one call, and
 * gradients reach TypeScript only when asked for with `t.grad`.
 */

import { backend, tidy } from './engine.js';
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
 * parameter for optimizers and autograd). Shapes and dtypes must match. Returns target.
 */
export function assign<T extends Tensor>(target: T, source: Tensor): T {
  const b = backend();
  b.impl.assign(handleOf(target, 'assign', b, 'target'), handleOf(source, 'assign', b, 'source'));
  return target;
}

/**
 * Runs fn with gradient recording off (inference, optimizer updates); restores it after. fn must
 * be synchronous: an async fn would run without gradients only until its first await and record
 * again after it (recording is one switch for the whole process, so it cannot follow one async
 * function), which is an Error here, as it is a silent bug in PyTorch's no_grad.
 */
export function noGrad<T>(fn: () => T): T {
  const b = backend();
  const previous = b.impl.setGradEnabled(false);
  let result: T;
  try {
    result = fn();
  } finally {
    b.impl.setGradEnabled(previous);
  }
  if (typeof (result as { then?: unknown } | null)?.then === 'function') {
    // The async function runs on regardless; keep a later rejection of it from going unhandled
    // (which would end the process) now that this error reports the mistake.
    (result as PromiseLike<unknown>).then(undefined, () => {});
    throw new Error('noGrad: fn returned a Promise (an async function?); noGrad only covers synchronous code, so everything after the first await would record gradients. Call noGrad around the synchronous parts instead (e.g. const y = noGrad(() => model.forward(x)); await ...)');
  }
  return result;
}

/**
 * d(y)/d(x) for each x in xs, returned as new tensors and NOT accumulated into any `grad`
 * (PyTorch's `torch.autograd.grad`). Only the part of the graph that leads to xs is walked, so
 * the gradient of a model's output with respect to its input does not compute (or disturb) the
 * weights' gradients. Each x must require gradients (a leaf set so, or a tensor made from one).
 * dy is the gradient of y (same shape); omitted, it is 1 for a one-element y and ones otherwise.
 * An x that y does not depend on gets null. Like backward, this consumes the graph.
 */
export function gradients(y: Tensor, xs: Tensor[], dy?: Tensor): Array<Tensor | null> {
  const b = backend();
  if (!Array.isArray(xs)) throw new Error(`gradients: xs must be an array of Tensors, got ${typeof xs}`);
  const handles = xs.map((x, i) => handleOf(x, 'gradients', b, `xs[${i}]`));
  const root = handleOf(y, 'gradients', b, 'y');
  let seed = dy === undefined ? -1 : handleOf(dy, 'gradients', b, 'dy');
  let ownedSeed = -1;
  if (dy === undefined && y.size !== 1) ownedSeed = seed = b.impl.full([...y.shape], 1, 'float32', 'gradients');
  try {
    return Array.from(b.impl.gradients(root, seed, handles), (h) => (h < 0 ? null : wrap(h, b)));
  } finally {
    if (ownedSeed >= 0) b.impl.dispose(ownedSeed);
  }
}

/** Whether ops record gradients now (false inside noGrad). */
export function isGradEnabled(): boolean {
  const impl = backend().impl;
  const enabled = impl.setGradEnabled(true);
  impl.setGradEnabled(enabled);
  return enabled;
}

/** Runs fn with gradient recording on, even inside noGrad; restores the setting after. */
function withGrad<T>(fn: () => T): T {
  const b = backend();
  const previous = b.impl.setGradEnabled(true);
  try {
    return fn();
  } finally {
    b.impl.setGradEnabled(previous);
  }
}

/**
 * The gradients of f at xs (tfjs's `tf.grads` / `tf.valueAndGrads`): f is run on fresh leaves that
 * share xs's data, so xs themselves need not require gradients and nothing is accumulated.
 * The forward pass's intermediates are freed; value and gradients are returned.
 */
export function valueAndGrads(f: (...xs: Tensor[]) => Tensor): (xs: Tensor[], dy?: Tensor) => { value: Tensor; grads: Tensor[] } {
  return (xs, dy) =>
    tidy(() =>
      withGrad(() => {
        const leaves = xs.map((x, i) => setRequiresGrad(detach(checkTensor(x, `xs[${i}]`))));
        const value = f(...leaves);
        if (!(value instanceof Tensor)) throw new Error(`grads: f must return a Tensor, got ${typeof value}`);
        const found = requiresGrad(value) ? gradients(value, leaves, dy) : leaves.map(() => null);
        const grads = found.map((g, i) => {
          if (g === null) {
            throw new Error(`grads: f's output does not depend on input ${i}; make sure every op from that input to the output runs inside f`);
          }
          return g;
        });
        return { value: detach(value), grads };
      }),
    );
}

/** The gradients of f at xs (see valueAndGrads). */
export function grads(f: (...xs: Tensor[]) => Tensor): (xs: Tensor[], dy?: Tensor) => Tensor[] {
  const vg = valueAndGrads(f);
  return (xs, dy) => {
    const { value, grads } = vg(xs, dy);
    value.dispose();
    return grads;
  };
}

/** The value and gradient of a one-input f at x (tfjs's `tf.valueAndGrad`). */
export function valueAndGrad(f: (x: Tensor) => Tensor): (x: Tensor, dy?: Tensor) => { value: Tensor; grad: Tensor } {
  const vg = valueAndGrads(f);
  return (x, dy) => {
    const { value, grads } = vg([x], dy);
    return { value, grad: grads[0] };
  };
}

/** The gradient of a one-input f at x (tfjs's `tf.grad`): grad(f)(x) has x's shape. */
export function grad(f: (x: Tensor) => Tensor): (x: Tensor, dy?: Tensor) => Tensor {
  const vg = valueAndGrads(f);
  return (x, dy) => {
    const { value, grads } = vg([x], dy);
    value.dispose();
    return grads[0];
  };
}

function checkTensor(x: unknown, name: string): Tensor {
  if (!(x instanceof Tensor)) throw new Error(`grads: ${name} must be a Tensor, got ${x === null ? 'null' : typeof x}`);
  return x;
}
