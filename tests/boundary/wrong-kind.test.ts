/**
 * Issues 13 and 14: an argument of the wrong kind, or a number that is not a live handle, gives an
 * Error naming the entry and the argument, for every entry of the Rust table (crates/kiln-boundary),
 * never napi's "Failed to convert napi value ..." and never a handle silently wrapped to another
 * tensor's (2^32 + h used to reach tensor h). Table-driven: the entries and their argument kinds
 * come from the backend's own `boundaryManifest()`, so an entry added to the table is covered here
 * with no new test code. The last block compares the native and the WASM wording, error by error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { backend } from '../../ts/engine.js';
import type { Backend } from '../../ts/backends/backend.js';
import { forEachBackend } from '../backends.js';
import type { ManifestEntry } from './contract.js';

type Raw = Record<string, (...args: unknown[]) => unknown>;

/** What the call threw (or a note that it returned). */
function thrown(f: () => unknown): string {
  try {
    f();
    return '(returned without an error)';
  } catch (e) {
    return (e as Error).message;
  }
}

forEachBackend(
  (name) => {
    let raw: Raw;
    let manifest: ManifestEntry[];
    let live: number;
    let disposed: number;
    beforeAll(() => {
      raw = backend().impl as unknown as Raw;
      manifest = JSON.parse(backend().impl.boundaryManifest()) as ManifestEntry[];
      live = backend().impl.fromF32(new Float32Array([1, 2, 3, 4]), [2, 2]);
      disposed = backend().impl.fromF32(new Float32Array([1]), [1]);
      backend().impl.dispose(disposed);
    });
    afterAll(() => {
      backend().impl.dispose(live);
    });

    const valid = (entry: ManifestEntry) => validArguments(entry, live);

    it('every argument of every entry refuses a value of the wrong kind, naming the entry and the argument', () => {
      const problems: string[] = [];
      let checked = 0;
      for (const entry of manifest) {
        entry.args.forEach(([arg, , kind], i) => {
          const args = valid(entry);
          args[i] = wrongValue(kind);
          const message = thrown(() => raw[entry.name](...args));
          checked++;
          if (!message.startsWith(`${entry.name}: argument '${arg}' must be `)) problems.push(`${entry.name}(${arg}: ${kind}): ${message}`);
        });
      }
      expect(problems, problems.join('\n')).toEqual([]);
      expect(checked).toBeGreaterThan(200);
    });

    it('the valid arguments pass every kind check (so the test above tests the argument it names)', () => {
      const problems: string[] = [];
      for (const entry of manifest) {
        // A tensor of its own per entry: `dispose`, `assign` and the optimizer steps act on it.
        const scratch = backend().impl.fromF32(new Float32Array([1, 2, 3, 4]), [2, 2]);
        let result: unknown;
        const message = thrown(() => (result = raw[entry.name](...validArguments(entry, scratch))));
        raw.dispose(scratch);
        if (/argument '.*' must be /.test(message)) problems.push(`${entry.name}: ${message}`);
        // What the calls made is freed, and the global switches they flipped are put back.
        if (entry.returns === 'Handle' && typeof result === 'number') raw.dispose(result);
        if (entry.returns === 'Handle[]' && Array.isArray(result)) result.forEach((h) => raw.dispose(h));
      }
      raw.setGradEnabled(true);
      expect(problems, problems.join('\n')).toEqual([]);
    });

    it('lists, strings and typed arrays are checked element by element, with the usual words', () => {
      expect(thrown(() => raw.fromF32(new Float64Array([1]), [1]))).toBe("fromF32: argument 'data' must be a Float32Array, got a Float64Array");
      expect(thrown(() => raw.fromI32([1, 2], [2]))).toBe("fromI32: argument 'data' must be a Int32Array, got an array");
      expect(thrown(() => raw.reshape(live, [2, '2']))).toBe("reshape: argument 'shape' must be an array of integers, got an array holding a string");
      expect(thrown(() => raw.concat([live, 2 ** 32 + live], 0))).toMatch(/^concat: argument 'xs' must be a tensor handle \(an integer from 0 to 2\^32 - 1\), got 4294967\d+$/);
      expect(thrown(() => raw.cast(live, 7))).toBe("cast: argument 'dtype' must be a dtype name (a string), got 7");
      expect(thrown(() => raw.cast(live, 'float64'))).toMatch(/^cast: unknown dtype 'float64'/);
      expect(thrown(() => raw.randn([2], 0, 1, 1.5))).toBe("randn: argument 'seed' must be a seed (an integer from 0 to 2^53 - 1) or undefined, got 1.5");
      expect(thrown(() => raw.setSeed(-1))).toBe("setSeed: argument 'seed' must be a seed (an integer from 0 to 2^53 - 1), got -1");
      expect(thrown(() => raw.full([1], 0, 'float32', 5))).toBe("full: argument 'opName' must be a string or undefined, got 5");
    });

    it('dims cross whole: one above what the backend addresses is refused, never truncated', () => {
      const bits = name === 'wasm' ? 32 : 64;
      const tooBig = bits === 32 ? 2 ** 32 + 5 : 2 ** 53;
      expect(thrown(() => raw.expand(live, [tooBig, 2]))).toMatch(new RegExp(`^expand: dimension ${tooBig} in shape \\[${tooBig}, 2\\] is larger than this backend can address`));
      expect(thrown(() => raw.fromF32(new Float32Array(0), [0, tooBig]))).toMatch(/^fromF32: dimension .* is larger than this backend can address/);
      if (bits === 64) {
        // Above 2^32 the shape comes back whole (it once came back as [0, 5]).
        const h = raw.fromF32(new Float32Array(0), [0, 2 ** 32 + 5]) as number;
        expect(raw.shape(h)).toEqual([0, 2 ** 32 + 5]);
        raw.dispose(h);
      }
    });

    it('optional arguments may be left out; lists of results come back as arrays', () => {
      const a = raw.randn([2], 0, 1) as number;
      const b = raw.full([2], 1, 'float32') as number;
      const parts = raw.split(a, [], 2, 0) as number[];
      expect(Array.isArray(parts)).toBe(true);
      expect(parts).toHaveLength(2);
      expect(raw.dtypeOf(b)).toBe('float32');
      expect(Array.from(raw.readF32(b) as Float32Array)).toEqual([1, 1]);
      for (const h of [a, b, ...parts]) raw.dispose(h);
    });

    it('a handle that is not an integer in range is refused, never wrapped to a live one', () => {
      const problems: string[] = [];
      for (const entry of manifest) {
        const i = entry.args.findIndex(([, , kind]) => kind === 'Handle');
        if (i < 0) continue;
        for (const bad of [2 ** 32 + live, live + 0.5, -1]) {
          const args = valid(entry);
          args[i] = bad;
          const message = thrown(() => raw[entry.name](...args));
          if (!message.startsWith(`${entry.name}: argument '${entry.args[i][0]}' must be a tensor handle`)) problems.push(`${entry.name}(${bad}): ${message}`);
        }
      }
      expect(problems, problems.join('\n')).toEqual([]);
    });

    it('a disposed handle is an Error naming the entry, in table and hand-written entries alike', () => {
      // Freshly disposed: the calls of the tests above may have reused the first one's number.
      disposed = backend().impl.fromF32(new Float32Array([1]), [1]);
      backend().impl.dispose(disposed);
      const notLive = `tensor handle ${disposed} is not live (was the tensor disposed?)`;
      expect(thrown(() => raw.unary(0, disposed, 0))).toBe(`unary: ${notLive}`);
      expect(thrown(() => raw.matmul(live, disposed, false, false))).toBe(`matmul: ${notLive}`);
      expect(thrown(() => raw.conv2d(disposed, live, -1, -1, { stride: [1, 1], padding: [0, 0, 0, 0], dilation: [1, 1], groups: 1 }, 0, undefined))).toBe(`conv2d: ${notLive}`);
      expect(thrown(() => raw.reshape(disposed, [4]))).toBe(`reshape: ${notLive}`);
      expect(thrown(() => raw.concat([live, disposed], 0))).toBe(`concat: ${notLive}`);
      expect(thrown(() => raw.reshape(2 ** 32 + live, [4]))).toMatch(/^reshape: argument 'x' must be a tensor handle/);
      expect(thrown(() => raw.shape(2 ** 32 + live))).toMatch(/^shape: argument 'h' must be a tensor handle/);
    });

    it('an optional handle takes -1 for none and refuses fractions', () => {
      expect(thrown(() => raw.backward(live, 0.5))).toBe("backward: argument 'seed' must be a tensor handle or -1 for none, got 0.5");
    });
  },
  { except: { gpu: 'the GPU backend is the native addon: the same entries, checked by the native run' } },
);

/** Arguments that pass every kind check (the entry may still refuse them as values). */
function validArguments(entry: ManifestEntry, live: number): unknown[] {
  const byKind: Record<string, () => unknown> = {
    Handle: () => live,
    MaybeHandle: () => -1,
    Flag: () => false,
    Dims: () => [1],
    Ints: () => [],
    Numbers: () => [],
    Handles: () => [live],
    Texts: () => [],
    ConvGeometries: () => [],
    DTypeName: () => 'float32',
    Text: () => 'float32',
    MaybeText: () => undefined,
    MaybeSeed: () => undefined,
    F32Data: () => new Float32Array([1]),
    I32Data: () => new Int32Array([1]),
    BoolData: () => new Uint8Array([1]),
    I8Data: () => new Int8Array([1]),
    Pair: () => [1, 1],
  };
  return entry.args.map(([, , kind, fields]) => (fields ? validGroup(fields) : kind in byKind ? byKind[kind]() : 0));
}

/** A group whose every field holds a value of its kind (numbers, and tuples of them). */
function validGroup(fields: [string, string][]): Record<string, unknown> {
  const value = (ts: string): unknown => (ts === 'boolean' ? false : ts.startsWith('[') ? ts.slice(1, -1).split(',').map(() => 1) : 1);
  return Object.fromEntries(fields.map(([f, ts]) => [f, value(ts)]));
}

/** A value of the wrong kind for `kind`: a number where a string is expected, else a string. */
function wrongValue(kind: string): unknown {
  return ['DTypeName', 'Text', 'MaybeText', 'DeviceName'].includes(kind) ? 42 : 'not a number';
}

/** The kinds that cross WASM as an f64 (bindings/wasm/src/entries.rs `crossing!`). */
const SCALAR_KINDS = ['Handle', 'MaybeHandle', 'Count', 'Int', 'Number', 'Flag', 'Seed'];

/**
 * Values JS itself would convert on the way into an f64 parameter (ToNumber: '2' -> 2, true -> 1,
 * null -> 0, 'x' -> NaN, [] -> 0): WASM once took them, or worded them as the number they became,
 * where the native addon refuses them as what they are.
 */
function convertibleValues(kind: string): unknown[] {
  return kind === 'Flag' ? [1, 0, 'true', null, undefined] : ['2', 'x', true, false, null, undefined, [], [1], {}];
}

/** Both backends' raw entries, the boundary manifest, and one live 2x2 tensor on each (the caller frees them). */
async function bothBackends() {
  const impls: Record<string, Backend> = {};
  for (const name of ['native', 'wasm'] as const) {
    await kiln.setBackend(name);
    impls[name] = backend().impl;
  }
  const manifest = JSON.parse(impls.native.boundaryManifest()) as ManifestEntry[];
  const lives = { native: impls.native.fromF32(new Float32Array([1, 2, 3, 4]), [2, 2]), wasm: impls.wasm.fromF32(new Float32Array([1, 2, 3, 4]), [2, 2]) };
  return { impls, manifest, lives };
}

describe('native and WASM word every wrong-kind error alike', () => {
  it('the same message from both, entry by entry, argument by argument', async () => {
    const { impls, manifest, lives } = await bothBackends();
    const differences: string[] = [];
    let compared = 0;
    for (const entry of manifest) {
      entry.args.forEach(([arg, , kind], i) => {
        const messages = (['native', 'wasm'] as const).map((name) => {
          const args = validArguments(entry, lives[name]);
          args[i] = wrongValue(kind);
          // The handle differs between the backends; the words must not.
          return thrown(() => (impls[name] as unknown as Raw)[entry.name](...args)).replaceAll(String(lives[name]), '<live>');
        });
        compared++;
        if (messages[0] !== messages[1]) differences.push(`${entry.name}(${arg}): native "${messages[0]}", wasm "${messages[1]}"`);
      });
    }
    impls.native.dispose(lives.native);
    impls.wasm.dispose(lives.wasm);
    expect(differences, differences.join('\n')).toEqual([]);
    expect(compared).toBeGreaterThan(200);
  });

  it('a scalar given a value JS would convert (a string, a boolean, null) is refused by both, in the same words', async () => {
    const { impls, manifest, lives } = await bothBackends();
    const problems: string[] = [];
    let compared = 0;
    for (const entry of manifest) {
      entry.args.forEach(([arg, , kind], i) => {
        if (!SCALAR_KINDS.includes(kind)) return;
        for (const value of convertibleValues(kind)) {
          const messages = (['native', 'wasm'] as const).map((name) => {
            const args = validArguments(entry, lives[name]);
            args[i] = value;
            return thrown(() => (impls[name] as unknown as Raw)[entry.name](...args));
          });
          compared++;
          const shown = `${entry.name}(${arg}: ${kind} = ${JSON.stringify(value) ?? 'undefined'})`;
          if (!messages[0].startsWith(`${entry.name}: argument '${arg}' must be `)) problems.push(`${shown}: native "${messages[0]}"`);
          // The values are refused before any handle is read, so the messages match word for word.
          if (messages[0] !== messages[1]) problems.push(`${shown}: native "${messages[0]}", wasm "${messages[1]}"`);
        }
      });
    }
    impls.native.dispose(lives.native);
    impls.wasm.dispose(lives.wasm);
    expect(problems, problems.join('\n')).toEqual([]);
    expect(compared).toBeGreaterThan(500);
  });
});
