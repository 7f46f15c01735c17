/**
 * The native CPU kernels are compiled per SIMD level (scalar, AVX2+FMA, AVX-512) and chosen at run
 * time. This forces each level in turn and re-checks elementwise, reduction, softmax and matmul
 * results, so every code path is covered on one machine. Native backend only.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as kiln from '../ts/index.js';
import type { Tensor } from '../ts/index.js';
import { backend } from '../ts/engine.js';
import { forEachBackend } from './backends.js';
import { SPECIALS, T, assertClose, expectTensor, randND, read } from './helpers.js';
import * as ref from './reference.js';

const LEVELS = ['scalar', 'avx2+fma', 'avx512'] as const;
const ORDER: Record<string, number> = { scalar: 0, 'avx2+fma': 1, avx512: 2 };

interface SimdControl {
  setSimdLevel(level: string): string;
  simdLevel(): string;
}

const impl = () => backend().impl as unknown as SimdControl;

const UNARY: Array<[string, (x: Tensor) => Tensor, (x: number) => number, { atol: number; rtol: number }]> = [
  ['exp', kiln.exp, Math.exp, { atol: 1e-37, rtol: 2e-6 }],
  ['log', kiln.log, Math.log, { atol: 1e-6, rtol: 1e-5 }],
  ['sqrt', kiln.sqrt, Math.sqrt, { atol: 1e-37, rtol: 1e-6 }],
  ['tanh', kiln.tanh, Math.tanh, { atol: 1e-37, rtol: 1e-5 }],
  ['sigmoid', kiln.sigmoid, ref.sigmoid, { atol: 1e-37, rtol: 1e-5 }],
  ['relu', kiln.relu, ref.relu, { atol: 0, rtol: 0 }],
  ['elu', (x) => kiln.elu(x), (x) => ref.elu(x, 1), { atol: 1e-7, rtol: 1e-5 }],
  ['gelu', kiln.gelu, ref.gelu, { atol: 1e-6, rtol: 1e-5 }],
  ['softplus', kiln.softplus, ref.softplus, { atol: 1e-37, rtol: 1e-5 }],
  ['sin', kiln.sin, Math.sin, { atol: 1e-6, rtol: 1e-5 }],
];

forEachBackend((name) => {
  describe.skipIf(name !== 'native')('SIMD levels', () => {
    let original = '';
    beforeAll(() => {
      original = kiln.simdLevel();
    });
    afterAll(() => {
      impl().setSimdLevel(original);
      expect(kiln.simdLevel()).toBe(original);
    });

    it('setSimdLevel reports the level in force, never above what the CPU has', () => {
      const best = ORDER[original];
      expect(best, `unexpected level name '${original}'`).toBeDefined();
      for (const level of LEVELS) {
        const got = impl().setSimdLevel(level);
        expect(got).toBe(kiln.simdLevel());
        expect(ORDER[got]).toBe(Math.min(ORDER[level], best));
      }
      expect(() => impl().setSimdLevel('sse9')).toThrow(/setSimdLevel/);
      impl().setSimdLevel(original);
    });

    for (const level of LEVELS) {
      describe(`at level ${level}`, () => {
        beforeAll(() => {
          impl().setSimdLevel(level);
        });
        afterAll(() => {
          impl().setSimdLevel(original);
        });

        it('unary ops on random values (odd lengths for SIMD tails) and edge values', async () => {
          const x = randND([1027], 1, -10, 10);
          const pos = randND([1027], 2, 1e-3, 100);
          const failures: string[] = [];
          const check = (fn: () => void) => {
            try {
              fn();
            } catch (e) {
              failures.push((e as Error).message);
            }
          };
          for (const [op, fn, r, tol] of UNARY) {
            const src = op === 'log' || op === 'sqrt' ? pos : x;
            const y = await read(fn(T(src)));
            check(() => assertClose(y, src.data.map(r), { atol: Math.max(tol.atol, 1e-6), rtol: Math.max(tol.rtol, 1e-5) }, `${op} @ ${level}`));
            if (op !== 'log' && op !== 'sqrt') {
              // gelu(-inf) is checked once in unary.test.ts; here only level-specific differences matter
              const edges = op === 'gelu' ? SPECIALS.filter((v) => v !== -Infinity) : SPECIALS;
              const ye = await read(fn(kiln.tensor(edges)));
              check(() => assertClose(ye, edges.map(r), tol, `${op}(edge values) @ ${level}`, { inputs: edges }));
            }
          }
          expect(failures, failures.join('\n')).toEqual([]);
        });

        it('binary ops, broadcast and contiguous, match the reference', async () => {
          const a = randND([33, 1], 3);
          const b = randND([1, 47], 4);
          const c = randND([1031], 5);
          const d = randND([1031], 6, 0.5, 2);
          const tol = { atol: 1e-6, rtol: 1e-6 };
          for (const [op, fn, r] of [
            ['add', kiln.add, (p: number, q: number) => p + q],
            ['mul', kiln.mul, (p: number, q: number) => p * q],
            ['div', kiln.div, (p: number, q: number) => p / q],
            ['maximum', kiln.maximum, Math.max],
            ['greater', kiln.greater, (p: number, q: number) => +(p > q)],
          ] as const) {
            await expectTensor(fn(T(a), T(b)), { values: ref.zip(a, b, r), ...tol }, `${op} broadcast @ ${level}`);
            await expectTensor(fn(T(c), T(d)), { values: ref.zip(c, d, r), ...tol }, `${op} contiguous @ ${level}`);
          }
        });

        it('reductions over rows with SIMD tails match the reference', async () => {
          for (const shape of [[5, 37], [3, 100], [2, 16]]) {
            const x = randND(shape, 7 + shape[1], -3, 3);
            for (const [op, fn, r] of [
              ['sum', kiln.sum, ref.sum],
              ['mean', kiln.mean, ref.mean],
              ['max', kiln.max, ref.max],
              ['min', kiln.min, ref.min],
              ['logSumExp', kiln.logSumExp, ref.logSumExp],
              ['variance', kiln.variance, ref.variance(0)],
            ] as const) {
              await expectTensor(fn(T(x), -1), { values: ref.reduce(x, -1, false, r), atol: 1e-5, rtol: 1e-5 }, `${op} [${shape}] @ ${level}`);
              await expectTensor(fn(T(x)), { values: [r(x.data)], atol: 1e-4, rtol: 1e-5 }, `${op} all [${shape}] @ ${level}`);
            }
          }
        });

        it('softmax/logSoftmax and matmul match the reference', async () => {
          const x = randND([7, 29], 9, -5, 5);
          for (const axis of [0, 1]) {
            await expectTensor(kiln.softmax(T(x), axis), { values: ref.softmax(x, axis), atol: 1e-6, rtol: 1e-5 }, `softmax ${axis} @ ${level}`);
            await expectTensor(kiln.logSoftmax(T(x), axis), { values: ref.softmax(x, axis, true), atol: 1e-5, rtol: 1e-5 }, `logSoftmax ${axis} @ ${level}`);
          }
          const big = await read(kiln.softmax(kiln.tensor([[1000, 1001, 1002]])));
          assertClose(big, ref.softmax({ shape: [3], data: [0, 1, 2] }, 0).data, { atol: 1e-6, rtol: 1e-5 }, `softmax large logits @ ${level}`);
          const a = randND([13, 17], 10);
          const b = randND([17, 11], 11);
          await expectTensor(kiln.matmul(T(a), T(b)), { values: ref.matmul(a, b), atol: 1e-5, rtol: 1e-5 }, `matmul @ ${level}`);
        });

        it('large inputs (threaded path) match the reference', async () => {
          const x = randND([70_001], 12, -8, 8);
          for (const [op, fn, r, tol] of UNARY.filter((u) => ['exp', 'tanh', 'gelu'].includes(u[0]))) {
            assertClose(await read(fn(T(x))), x.data.map(r), { atol: Math.max(tol.atol, 1e-6), rtol: tol.rtol }, `${op} large @ ${level}`);
          }
          const s = await read(kiln.sum(T(x)));
          expect(Math.abs(s[0] - ref.sum(x.data))).toBeLessThan(1e-2);
        });
      });
    }

    it('all levels agree with each other to within float32 rounding', async () => {
      const x = randND([513], 13, -6, 6);
      const results: Record<string, number[][]> = {};
      for (const level of LEVELS) {
        const got = impl().setSimdLevel(level);
        const X = T(x);
        results[got] = [await read(kiln.exp(X)), await read(kiln.gelu(X)), await read(kiln.tanh(X)), await read(kiln.softmax(X)), await read(kiln.sum(X))];
      }
      impl().setSimdLevel(original);
      const names = Object.keys(results);
      for (const other of names.slice(1)) {
        for (let k = 0; k < results[names[0]].length; k++) {
          assertClose(results[other][k], results[names[0]][k], { atol: 1e-6, rtol: 1e-5, roundExpected: false }, `${other} vs ${names[0]} (check ${k})`);
        }
      }
    });
  });
});
