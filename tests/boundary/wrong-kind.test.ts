/**
 * Issues 13 and 14: an argument of the wrong kind, or a number that is not a live handle, gives an
 * Error naming the entry and the argument, for every entry of the Rust table (crates/kiln-boundary),
 * never napi's "Failed to convert napi value ..." and never a handle silently wrapped to another
 * tensor's (2^32 + h used to reach tensor h). Table-driven: the entries and their argument kinds
 * come from the backend's own `boundaryManifest()`.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { backend } from '../../ts/engine.js';
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

    /** Arguments that pass every kind check (the entry may still refuse them as values). */
    const valid = (entry: ManifestEntry) => entry.args.map(([, , kind]) => ({ Handle: live, MaybeHandle: -1, Flag: false })[kind] ?? 0);

    it('every argument of every entry refuses a string, naming the entry and the argument', () => {
      const problems: string[] = [];
      let checked = 0;
      for (const entry of manifest) {
        entry.args.forEach(([arg, , kind], i) => {
          // Through wasm-bindgen a plain number argument is converted by JS itself (ToNumber: a
          // string becomes NaN, which a number argument may legitimately be); see docs/architecture.md.
          if (name === 'wasm' && kind === 'Number') return;
          const args = valid(entry);
          args[i] = 'not a number';
          const message = thrown(() => raw[entry.name](...args));
          checked++;
          if (!message.startsWith(`${entry.name}: argument '${arg}' must be `)) problems.push(`${entry.name}(${arg}: ${kind}): ${message}`);
        });
      }
      expect(problems, problems.join('\n')).toEqual([]);
      expect(checked).toBeGreaterThan(name === 'wasm' ? 150 : 200);
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
      const notLive = `tensor handle ${disposed} is not live (was the tensor disposed?)`;
      expect(thrown(() => raw.unary(0, disposed, 0))).toBe(`unary: ${notLive}`);
      expect(thrown(() => raw.matmul(live, disposed, false, false))).toBe(`matmul: ${notLive}`);
      expect(thrown(() => raw.conv2d(disposed, live, -1, 1, 1, 0, 0, 0, 0, 1, 1, 1))).toBe(`conv2d: ${notLive}`);
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
