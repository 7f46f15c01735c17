/**
 * Module: the base of every layer and model. A module finds its parameters, buffers and children
 * by walking its own properties, so a model is plain TypeScript:
 *
 *   class Block extends nn.Module {
 *     readonly a = new nn.Linear(8, 8);
 *     readonly b = new nn.Linear(8, 8);
 *     forward(x: Tensor): Tensor { return x.add(this.b.forward(this.a.forward(x).relu())); }
 *   }
 *
 * Ownership and updates (see also nn/assign.ts):
 * - A module owns its parameters and buffers: they are `kiln.keep`-ed (no tidy frees them) and
 *   freed by `module.dispose()`.
 * - A parameter is one Tensor object for the module's lifetime. Its values change in place: Kiln's
 *   optimizers update it with fused copy-on-write kernels, and `loadStateDict` copies into it, so an
 *   optimizer built before a `loadStateDict` keeps working.
 * - To swap a parameter for a new tensor (a hand-written update such as `p.sub(g.mul(lr))`), call
 *   `setParameter(name, value)`: the module takes ownership of `value`, makes it a leaf with the old
 *   parameter's requiresGrad, keeps it and disposes the old tensor. Anything holding the old Tensor
 *   object (an optimizer's state map) must then be given the new one.
 */

import { keep } from '../engine.js';
import { Tensor, type Device } from '../tensor.js';
import { assign } from '../autograd.js';
import { summarize, type SummaryOptions } from './summary.js';
import { asCalled } from '../named-errors.js';

/** Tensors registered as trainable parameters / as buffers. The walk finds properties holding them. */
const PARAMETERS = new WeakSet<Tensor>();
const BUFFERS = new WeakSet<Tensor>();

export type AnyModule = Module<any, any>;

/** Which registry a name refers to, for messages. */
type Kind = 'parameter' | 'buffer';

export interface LoadStateDictOptions {
  /** Throw when a key is missing from the state or unknown to the module (default true). */
  strict?: boolean;
}

export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

function shapeStr(t: Tensor): string {
  return `${t.dtype} [${t.shape.join(', ')}]`;
}

function join(prefix: string, name: string): string {
  return prefix === '' ? name : `${prefix}.${name}`;
}

export abstract class Module<In extends unknown[] = [Tensor], Out = Tensor> {
  /** True in training mode (Dropout drops, BatchNorm uses batch statistics); see train()/eval(). */
  training = true;

  /** The computation. Subclasses document their shapes, e.g. [batch, in] -> [batch, out]. */
  abstract forward(...inputs: In): Out;

  constructor() {
    // Errors raised inside forward by the ops a layer is built from ("gather: ...") come out named
    // after the layer ("Embedding: ... (raised by gather)"): see named-errors.ts. Installed on the
    // instance, so every subclass's forward is covered without each one opting in; not enumerable,
    // so the walk over a module's properties (parameters, children) does not see it.
    const forward = this.forward as (...inputs: In) => Out;
    if (typeof forward !== 'function') return;
    const name = new.target.name;
    Object.defineProperty(this, 'forward', {
      value: (...inputs: In): Out => asCalled(name, 'layer', () => forward.apply(this, inputs)),
      writable: true,
      configurable: true,
      enumerable: false,
    });
  }

  // ---- registration ----

  /**
   * Registers `value` as a trainable parameter: keeps it and makes it a leaf that requires
   * gradients (unless `requiresGrad` is false). Assign the result to a property. float32 [...] -> same
   */
  protected registerParameter(value: Tensor, requiresGrad = true): Tensor {
    if (!(value instanceof Tensor)) throw new Error(`${this.constructor.name}.registerParameter: expected a Tensor, got ${typeof value}`);
    if (value.dtype !== 'float32') throw new Error(`${this.constructor.name}.registerParameter: parameters must be float32, got ${shapeStr(value)}`);
    value.setRequiresGrad(false);
    if (requiresGrad) value.setRequiresGrad(true);
    PARAMETERS.add(keep(value));
    return value;
  }

  /**
   * Registers `value` as a buffer: state saved in the state dict but not trained (running
   * statistics). Kept, never requires gradients. [...] -> same
   */
  protected registerBuffer(value: Tensor): Tensor {
    if (!(value instanceof Tensor)) throw new Error(`${this.constructor.name}.registerBuffer: expected a Tensor, got ${typeof value}`);
    if (value.dtype === 'float32') value.setRequiresGrad(false);
    BUFFERS.add(keep(value));
    return value;
  }

  // ---- the walk ----

  /**
   * Direct children and their names: own properties holding a Module, or an array of Modules
   * (named `prop.0`, `prop.1`, ...), in declaration order. Containers may override the naming.
   */
  namedChildren(): Array<[string, AnyModule]> {
    const out: Array<[string, AnyModule]> = [];
    for (const [key, value] of Object.entries(this)) {
      if (value instanceof Module) out.push([key, value]);
      else if (Array.isArray(value) && value.length > 0 && value.every((m) => m instanceof Module)) {
        value.forEach((m: AnyModule, i) => out.push([`${key}.${i}`, m]));
      }
    }
    return out;
  }

  /** This module (named '') and every descendant, pre-order, each once (shared modules: first name). */
  namedModules(): Array<[string, AnyModule]> {
    const out: Array<[string, AnyModule]> = [];
    const seen = new Set<AnyModule>();
    const visit = (prefix: string, m: AnyModule): void => {
      if (seen.has(m)) return;
      seen.add(m);
      out.push([prefix, m]);
      for (const [name, child] of m.namedChildren()) visit(join(prefix, name), child);
    };
    visit('', this);
    return out;
  }

  /** This module's own registered tensors of one kind (not its children's), by property name. */
  private ownTensors(kind: Kind): Array<[string, Tensor]> {
    const registry = kind === 'parameter' ? PARAMETERS : BUFFERS;
    const out: Array<[string, Tensor]> = [];
    for (const [key, value] of Object.entries(this)) {
      if (value instanceof Tensor && registry.has(value)) out.push([key, value]);
    }
    return out;
  }

  private namedTensors(kinds: Kind[]): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = [];
    const seen = new Set<Tensor>();
    for (const [prefix, m] of this.namedModules()) {
      for (const kind of kinds) {
        for (const [key, t] of m.ownTensors(kind)) {
          if (seen.has(t)) continue; // tied weights appear once, under their first name
          seen.add(t);
          out.push([join(prefix, key), t]);
        }
      }
    }
    return out;
  }

  /** Parameters with dotted names ('0.weight', 'encoder.layers.1.bias'), module by module in declaration order. */
  namedParameters(): Array<[string, Tensor]> {
    return this.namedTensors(['parameter']);
  }

  /** The parameters, in namedParameters() order (frozen ones included). */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** Buffers (non-trainable state such as BatchNorm running statistics) with dotted names. */
  namedBuffers(): Array<[string, Tensor]> {
    return this.namedTensors(['buffer']);
  }

  /** The buffers, in namedBuffers() order. */
  buffers(): Tensor[] {
    return this.namedBuffers().map(([, t]) => t);
  }

  /** Number of parameter elements (only those requiring gradients with trainableOnly). */
  numParameters(options: { trainableOnly?: boolean } = {}): number {
    let n = 0;
    for (const p of this.parameters()) if (!options.trainableOnly || p.requiresGrad) n += p.size;
    return n;
  }

  // ---- modes ----

  /** Sets training mode on this module and every descendant. Returns this. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  /** Evaluation mode (Dropout is the identity, BatchNorm uses running statistics). Returns this. */
  eval(): this {
    return this.train(false);
  }

  /** Stops gradients for every parameter (requiresGrad off, accumulated gradients dropped). Returns this. */
  freeze(): this {
    for (const p of this.parameters()) p.setRequiresGrad(false);
    return this;
  }

  /** Makes every parameter trainable again. Returns this. */
  unfreeze(): this {
    for (const p of this.parameters()) p.setRequiresGrad(true);
    return this;
  }

  /**
   * Moves every parameter and buffer to `device` ('gpu' or 'cpu') in place: the same Tensor
   * objects, so an optimizer built on them keeps working (its state follows, see Optimizer.to).
   * Run the model with the matching backend active (`kiln.setBackend('gpu')`). Returns this.
   */
  to(device: Device): this {
    for (const t of [...this.parameters(), ...this.buffers()]) t.moveTo(device);
    return this;
  }

  /** Clears every parameter's accumulated gradient. */
  zeroGrad(): void {
    for (const p of this.parameters()) if (!p.isDisposed) p.zeroGrad();
  }

  /** Frees every parameter and buffer now. The module cannot be used afterwards. */
  dispose(): void {
    for (const [, t] of this.namedTensors(['parameter', 'buffer'])) t.dispose();
  }

  // ---- state ----

  /**
   * Parameters and buffers by dotted name (module by module: parameters, then buffers). The
   * values are the live tensors, not copies: snapshot with `t.detach()` (shares the buffer;
   * optimizer updates are copy-on-write) and do not dispose them.
   */
  stateDict(): Record<string, Tensor> {
    return Object.fromEntries(this.namedTensors(['parameter', 'buffer']));
  }

  /**
   * Copies `state` into this module's tensors, in place: parameters keep their Tensor objects,
   * requiresGrad and gradients (so optimizers keep working). Every key and shape is checked before
   * anything is written; a mismatch throws naming the key and both shapes. The caller keeps
   * ownership of `state`. A tensor currently holding Inf/NaN cannot be overwritten in place and is
   * replaced by a new Tensor instead (see nn/assign.ts).
   */
  loadStateDict(state: Record<string, Tensor>, options: LoadStateDictOptions = {}): LoadStateDictResult {
    const op = `${this.constructor.name}.loadStateDict`;
    const own = this.namedTensors(['parameter', 'buffer']);
    const ownNames = new Set(own.map(([n]) => n));
    const missingKeys = own.map(([n]) => n).filter((n) => !Object.hasOwn(state, n));
    const unexpectedKeys = Object.keys(state).filter((n) => !ownNames.has(n));
    if ((options.strict ?? true) && (missingKeys.length > 0 || unexpectedKeys.length > 0)) {
      const parts = [];
      if (missingKeys.length > 0) parts.push(`missing keys: ${missingKeys.join(', ')}`);
      if (unexpectedKeys.length > 0) parts.push(`unexpected keys: ${unexpectedKeys.join(', ')}`);
      throw new Error(`${op}: the state dict does not match the module (${parts.join('; ')}); pass { strict: false } to load the common keys`);
    }
    const problems: string[] = [];
    for (const [name, current] of own) {
      if (!Object.hasOwn(state, name)) continue;
      const value = state[name];
      if (!(value instanceof Tensor)) problems.push(`'${name}' is not a Tensor`);
      else if (value.isDisposed) problems.push(`'${name}' is disposed`);
      else if (value.dtype !== current.dtype || value.shape.join() !== current.shape.join()) {
        problems.push(`'${name}' is ${shapeStr(value)} in the state dict but ${shapeStr(current)} in the module`);
      }
    }
    if (problems.length > 0) throw new Error(`${op}: nothing was loaded: ${problems.join('; ')}`);
    for (const [name, current] of own) {
      if (!Object.hasOwn(state, name) || state[name] === current) continue;
      if (current.dtype === 'float32') assign(current, state[name]);
      else this.replace(name, state[name].detach(), op);
    }
    return { missingKeys, unexpectedKeys };
  }

  /**
   * Replaces the parameter `name` ('fc.weight') with `value` (same shape, float32). The module takes
   * ownership of `value`: it is cut from any graph, becomes a leaf requiring gradients if the old
   * parameter did (frozen stays frozen), is kept, and the old tensor is disposed. For hand-written
   * updates: `noGrad(() => m.setParameter(n, p.sub(p.grad!.mul(lr))))`.
   */
  setParameter(name: string, value: Tensor): void {
    this.replace(name, value, `${this.constructor.name}.setParameter`, 'parameter');
  }

  /** Replaces the buffer `name` with `value` (same shape and dtype); as setParameter, without gradients. */
  setBuffer(name: string, value: Tensor): void {
    this.replace(name, value, `${this.constructor.name}.setBuffer`, 'buffer');
  }

  private replace(name: string, value: Tensor, op: string, only?: Kind): void {
    const dot = name.lastIndexOf('.');
    const owner = new Map(this.namedModules()).get(dot < 0 ? '' : name.slice(0, dot));
    const key = name.slice(dot + 1);
    const current: unknown = owner === undefined ? undefined : (owner as unknown as Record<string, unknown>)[key];
    const isParameter = current instanceof Tensor && PARAMETERS.has(current);
    const isBuffer = current instanceof Tensor && BUFFERS.has(current);
    if (!(current instanceof Tensor) || !(only === 'parameter' ? isParameter : only === 'buffer' ? isBuffer : isParameter || isBuffer)) {
      const known = (only === 'buffer' ? this.namedBuffers() : this.namedParameters()).map(([n]) => n);
      throw new Error(`${op}: no ${only ?? 'tensor'} named '${name}' (known: ${known.join(', ') || 'none'})`);
    }
    if (!(value instanceof Tensor)) throw new Error(`${op}: '${name}' must be given a Tensor, got ${typeof value}`);
    if (value.dtype !== current.dtype || value.shape.join() !== current.shape.join()) {
      throw new Error(`${op}: '${name}' is ${shapeStr(current)}, the new value is ${shapeStr(value)}`);
    }
    if (value === current) return;
    if (isParameter) owner!.registerParameter(value, current.isDisposed || current.requiresGrad);
    else owner!.registerBuffer(value);
    // Every property holding the old tensor moves to the new one, so tied weights stay tied.
    for (const [, m] of this.namedModules()) {
      const props = m as unknown as Record<string, unknown>;
      for (const [k, v] of Object.entries(props)) if (v === current) props[k] = value;
    }
    current.dispose();
  }

  // ---- inspection ----

  /**
   * Prints (unless `print: false`) and returns a table of the layers: name, type, output shape and
   * parameter count, with totals. Shapes come from one forward pass on zeros of
   * [batchSize (1), ...inputShape] in eval mode without gradients; nothing is kept or changed.
   */
  summary(inputShape: number[], options: SummaryOptions = {}): string {
    return summarize(this, inputShape, options);
  }
}
