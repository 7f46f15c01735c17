/**
 * Errors name what the user called. A composite public function (binaryCrossEntropy) or a layer's
 * forward (nn.Embedding) is built from ops that validate their own inputs and name themselves in
 * their errors ("mul: expected float32 tensors ..."); the user called neither mul nor gather, so
 * such a message sends them looking in the wrong place. Each composite runs its body in a named
 * scope; an error leaving the scope is renamed once, to the name the user knows, keeping the op
 * that raised it and the original error as `cause`:
 *
 *   binaryCrossEntropy: expected float32 tensors, got float32 [2] and int32 [2] (raised by mul)
 *
 * Which scope names the error: the innermost layer (the part of a model where it happened), else
 * the outermost function (what the user called; composites calling composites do not rename).
 * Functions passed through on the way are listed: "(raised by mul inside binaryCrossEntropy)".
 */

type ScopeKind = 'function' | 'layer';

/** The kinds of the scopes open right now, innermost last. Scopes are synchronous, so one stack suffices. */
const open: ScopeKind[] = [];
/** Marks an error already renamed by a scope, so outer scopes leave it alone. */
const NAMED = Symbol('kiln.namedError');
/** Function scopes an error passed through before it was named. */
const TRAIL = Symbol('kiln.errorTrail');

type Tagged = Error & { [NAMED]?: true; [TRAIL]?: string[] };

/** "op: rest" -> ["op", "rest"]; op names look like mul, Linear, Sequential.loadStateDict. */
const PREFIX = /^([A-Za-z_$][\w$]*(?:\.[\w$]+)*): ([\s\S]*)$/;

/** "LSTM(4 -> 8): ..." and "Sequential.loadStateDict: ..." already name LSTM and Sequential. */
function namesItself(message: string, name: string): boolean {
  return message.startsWith(name) && /^[:.( ]/.test(message.slice(name.length, name.length + 1));
}

function rename(e: Tagged, name: string): Error {
  const m = PREFIX.exec(e.message);
  const trail = e[TRAIL] ?? [];
  if ((m !== null && m[1] === name) || namesItself(e.message, name)) {
    e[NAMED] = true;
    return e;
  }
  const raisedBy = m === null ? undefined : m[1];
  const rest = m === null ? e.message : m[2];
  const origin = raisedBy === undefined ? '' : ` (raised by ${[raisedBy, ...trail.filter((t) => t !== raisedBy && t !== name)].join(' inside ')})`;
  const Ctor = e instanceof TypeError ? TypeError : e instanceof RangeError ? RangeError : Error;
  const named: Tagged = new Ctor(`${name}: ${rest}${origin}`, { cause: e });
  named[NAMED] = true;
  return named;
}

/**
 * Runs `body` as the public function or layer `name` (see the file comment): errors raised
 * inside by other ops come out named `name`. Returns what `body` returns.
 */
export function asCalled<T>(name: string, kind: ScopeKind, body: () => T): T {
  open.push(kind);
  try {
    return body();
  } catch (e) {
    throw leaving(e, name, kind);
  } finally {
    open.pop();
  }
}

/** What an error becomes as it leaves the scope `name` (called while that scope is still open). */
function leaving(e: unknown, name: string, kind: ScopeKind): unknown {
  if (!(e instanceof Error) || (e as Tagged)[NAMED]) return e;
  if (kind === 'function' && open.length > 1) {
    // An outer function or layer names it; remember that it passed through here.
    // (A composite with its own scope, exported wrapped, passes the same name twice: kept once.)
    const trail = (e as Tagged)[TRAIL] ?? [];
    if (trail.at(-1) !== name) (e as Tagged)[TRAIL] = [...trail, name];
    return e;
  }
  return rename(e as Tagged, name);
}

/**
 * `fn` as the public function `name`: the same call, with errors named as `asCalled` names them.
 * For the functions of the public API, wrapped once where they are exported (core-api.ts) or
 * installed (tensor-methods/attach.ts). Forwards `arguments` (no closure or array per call), so
 * the success path costs a push and a pop; V8 keeps a try/catch that does not throw free.
 */
export function namedFunction<F extends (...args: never[]) => unknown>(name: string, fn: F): F {
  const named = function (this: unknown): unknown {
    open.push('function');
    try {
      // eslint-disable-next-line prefer-rest-params
      return fn.apply(this, arguments as unknown as Parameters<F>);
    } catch (e) {
      throw leaving(e, name, 'function');
    } finally {
      open.pop();
    }
  };
  Object.defineProperty(named, 'name', { value: fn.name || name });
  Object.defineProperty(named, 'length', { value: fn.length });
  return named as unknown as F;
}

/** Every function of `module` (a module namespace) wrapped by `namedFunction` under its export name. */
export function namedFunctions<M extends object>(module: M): M {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(module)) {
    // Classes (SparseMatrix) keep their identity: `new` and instanceof need the class itself.
    const isClass = typeof value === 'function' && /^class[\s{]/.test(Function.prototype.toString.call(value));
    out[key] = typeof value === 'function' && !isClass ? namedFunction(key, value as (...args: never[]) => unknown) : value;
  }
  return out as M;
}
