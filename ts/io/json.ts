/**
 * Strict JSON for saved files. JSON.stringify quietly drops functions and undefined and turns NaN
 * into null, and JSON.parse quietly keeps the last of two duplicate keys; both would let a saved
 * file differ from what the caller meant without anyone noticing, so io checks for them explicitly.
 */

/** A value that survives JSON.stringify / JSON.parse unchanged. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
/** A JSON object (what config.json and checkpoint `extra` hold at the top level). */
export type JsonObject = { [key: string]: JsonValue };

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function kindOf(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (typeof v === 'number') return String(v);
  if (typeof v !== 'object' || v === null) return `a ${typeof v}`;
  const name = (v as object).constructor?.name;
  return name ? `a ${name}` : 'an object without a prototype';
}

/**
 * Throws unless `value` is plain JSON: objects (plain), arrays, strings, finite numbers, booleans,
 * null. `path` names the value in the message, e.g. `saveModel: config.layers[2].activation is a function`.
 */
export function checkJsonable(value: unknown, op: string, path: string): void {
  const visiting = new Set<object>();
  const walk = (v: unknown, at: string): void => {
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new Error(`${op}: ${at} is ${v}, which JSON cannot hold (only finite numbers)`);
      return;
    }
    const plainJson = 'must be plain JSON (objects, arrays, strings, finite numbers, booleans, null)';
    if (typeof v !== 'object') throw new Error(`${op}: ${at} is ${kindOf(v)}; it ${plainJson}`);
    if (visiting.has(v)) throw new Error(`${op}: ${at} refers back to itself (a cycle); it ${plainJson}`);
    visiting.add(v);
    if (Array.isArray(v)) {
      v.forEach((item, i) => walk(item, `${at}[${i}]`));
    } else if (isPlainObject(v)) {
      for (const [k, item] of Object.entries(v)) walk(item, /^[A-Za-z_$][\w$]*$/.test(k) ? `${at}.${k}` : `${at}[${JSON.stringify(k)}]`);
    } else {
      throw new Error(`${op}: ${at} is ${kindOf(v)}; it ${plainJson}`);
    }
    visiting.delete(v);
  };
  walk(value, path);
}

/** A key that occurs twice in one JSON object, with the keys of the objects enclosing it. */
export interface DuplicateKey {
  key: string;
  /** Keys from the top-level object down to the object holding the duplicate ([] = top level). */
  parents: string[];
}

/**
 * Finds the first duplicate key in any object of `text`, which must already be valid JSON
 * (JSON.parse succeeded), so this scanner only needs to track strings, nesting and commas.
 */
export function findDuplicateKey(text: string): DuplicateKey | null {
  // One frame per open object or array; `keys` is null for arrays.
  const frames: Array<{ keys: Set<string> | null; name: string; lastKey: string }> = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    const top = frames[frames.length - 1];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (top?.keys && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) return { key, parents: frames.slice(1).map((f) => f.name) };
        top.keys.add(key);
        top.lastKey = key;
        expectKey = false;
      }
      i = j;
    } else if (c === '{' || c === '[') {
      const name = top === undefined ? '' : top.keys ? top.lastKey : '[]';
      frames.push({ keys: c === '{' ? new Set() : null, name, lastKey: '' });
      expectKey = c === '{';
    } else if (c === '}' || c === ']') {
      frames.pop();
    } else if (c === ',') {
      expectKey = top?.keys !== null && top !== undefined;
    }
  }
  return null;
}
