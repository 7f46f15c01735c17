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

function rename(e: Tagged, name: string): Error {
  const m = PREFIX.exec(e.message);
  const trail = e[TRAIL] ?? [];
  if (m !== null && m[1] === name) {
    e[NAMED] = true;
    return e;
  }
  const raisedBy = m === null ? undefined : m[1];
  const rest = m === null ? e.message : m[2];
  const origin = raisedBy === undefined ? '' : ` (raised by ${[raisedBy, ...trail.filter((t) => t !== raisedBy)].join(' inside ')})`;
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
    if (!(e instanceof Error) || (e as Tagged)[NAMED]) throw e;
    const enclosed = open.length > 1;
    if (kind === 'function' && enclosed) {
      // An outer function or layer names it; remember that it passed through here.
      (e as Tagged)[TRAIL] = [...((e as Tagged)[TRAIL] ?? []), name];
      throw e;
    }
    throw rename(e as Tagged, name);
  } finally {
    open.pop();
  }
}
