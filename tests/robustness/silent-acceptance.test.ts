/**
 * Inputs that used to be accepted silently with a wrong result (issue 13, class 7). Each now does
 * the right thing or throws a clear Error; the choice follows PyTorch where PyTorch is sound and
 * says so where Kiln is stricter:
 * - int32/int8 tensors from fractional, out-of-range or NaN values: Error (PyTorch refuses
 *   overflow; it truncates fractions, which in JS is almost always a bug). `cast` still converts
 *   on purpose (saturating, NaN -> 0).
 * - non-integer or negative seeds: Error (they were truncated, so 1.5 and 1 gave the same numbers).
 * - variance with a correction above the count: Error (PyTorch warns and returns Inf/NaN).
 * - slice with a negative size other than -1 ("to the end"): Error (PyTorch's narrow refuses).
 * - the same parameter twice in one optimizer: Error (PyTorch errors across groups, warns within).
 * - noGrad(async ...): Error (recording is off only until the first await; PyTorch's no_grad has the
 *   same trap silently).
 * - crossEntropy with a -Inf logit at the target: +Inf, as PyTorch (it was NaN).
 */
import { describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { forEachBackend } from '../backends.js';
import { expectThrows } from '../helpers.js';

forEachBackend(() => {
  describe('integer tensors take integers in range', () => {
    it('fractions, out-of-range values and NaN are errors that name the element', () => {
      expectThrows(() => kiln.tensor([1.5], [1], 'int32'), 'tensor: int32 values must be integers from -2147483648 to 2147483647, but element 0 is 1.5');
      expectThrows(() => kiln.tensor([0, 2 ** 31], [2], 'int32'), 'element 1 is 2147483648');
      expectThrows(() => kiln.tensor([-(2 ** 31) - 1], [1], 'int32'), 'element 0 is -2147483649');
      expectThrows(() => kiln.tensor([NaN], [1], 'int32'), 'element 0 is NaN');
      expectThrows(() => kiln.tensor(Float32Array.from([0, Infinity]), [2], 'int32'), 'element 1 is Infinity');
      expectThrows(() => kiln.tensor([128], [1], 'int8'), 'tensor: int8 values must be integers from -128 to 127, but element 0 is 128');
      expectThrows(() => kiln.tensor([[1, 2], [3, 4.25]], undefined, 'int32'), 'element 3 is 4.25');
    });

    it('the extremes of the range, typed arrays and booleans are accepted exactly', () => {
      const t = kiln.tensor([-(2 ** 31), 2 ** 31 - 1, 0, -0], [4], 'int32');
      expect(Array.from(t.dataSync())).toEqual([-(2 ** 31), 2 ** 31 - 1, 0, 0]);
      const b = kiln.tensor([true, false], [2], 'int32');
      expect(Array.from(b.dataSync())).toEqual([1, 0]);
      const u = kiln.tensor(Uint8Array.from([255, 0]), [2]);
      expect(u.dtype).toBe('int32');
      expect(Array.from(u.dataSync())).toEqual([255, 0]);
      kiln.dispose([t, b, u]);
    });

    it('cast converts on purpose: saturating, NaN to 0 (documented; PyTorch leaves these undefined)', () => {
      const t = kiln.tensor([NaN, 3e9, -3e9, 1.7, -1.7]);
      const c = t.cast('int32');
      expect(Array.from(c.dataSync())).toEqual([0, 2147483647, -2147483648, 1, -1]);
      kiln.dispose([t, c]);
    });
  });

  describe('seeds are non-negative integers', () => {
    it('randn, randu and setSeed refuse fractions, negatives and NaN', () => {
      expectThrows(() => kiln.randn([2], { seed: 1.5 }), 'randn: seed must be a non-negative integer (at most 2^53), got 1.5');
      expectThrows(() => kiln.randu([2], { seed: -1 }), 'randu: seed must be a non-negative integer');
      expectThrows(() => kiln.setSeed(NaN), 'setSeed: seed must be a non-negative integer', 'got NaN');
      expectThrows(() => new kiln.nn.Linear(2, 2, { seed: 0.5 }), 'Linear: seed must be a non-negative integer (at most 2^53), got 0.5');
    });

    it('integer seeds still reproduce their numbers', () => {
      const a = kiln.randn([3], { seed: 7 });
      const b = kiln.randn([3], { seed: 7 });
      expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
      kiln.dispose([a, b]);
    });
  });

  describe('variance correction', () => {
    it('a correction larger than the count reduced is an error; equal to it gives NaN as in PyTorch', () => {
      const x = kiln.tensor([1, 2, 3, 4], [2, 2]);
      expectThrows(() => kiln.variance(x, 1, false, 3), 'variance: correction 3 is larger than the 2 elements reduced per result (shape [2, 2]');
      expectThrows(() => kiln.variance(x, undefined, false, -1), 'variance: correction must be a non-negative integer, got -1');
      expectThrows(() => kiln.variance(x, undefined, false, 0.5), 'got 0.5');
      const v = kiln.variance(x, 1, false, 1);
      expect(Array.from(v.dataSync())).toEqual([0.5, 0.5]);
      const one = kiln.variance(kiln.tensor([5]), undefined, false, 1);
      expect(Number.isNaN(one.dataSync()[0])).toBe(true);
      kiln.dispose([x, v, one]);
    });
  });

  describe('slice sizes', () => {
    it('a negative size other than -1 is an error; -1 still means to the end', () => {
      const x = kiln.tensor([1, 2, 3, 4]);
      expectThrows(() => kiln.slice(x, [0], [-2]), 'slice: size [-2] has -2 at dimension 0; sizes are non-negative, or -1');
      const rest = kiln.slice(x, [1], [-1]);
      expect(Array.from(rest.dataSync())).toEqual([2, 3, 4]);
      kiln.dispose([x, rest]);
    });
  });

  describe('optimizers', () => {
    it('the same parameter listed twice, in one group or in two, is an error naming both places', () => {
      const p = kiln.keep(kiln.zeros([2, 3]));
      const q = kiln.keep(kiln.zeros([3]));
      expectThrows(() => new kiln.optim.Adam([p, q, p], { lr: 0.1 }), 'Adam: the same parameter (float32 [2, 3]) is listed twice, as parameter 0 and as parameter 2');
      expectThrows(() => new kiln.optim.SGD([{ params: [q] }, { params: [p, q] }], { lr: 0.1 }), 'SGD: the same parameter (float32 [3]) is listed twice, as group 0, parameter 0 and as group 1, parameter 1');
      kiln.dispose([p, q]);
    });
  });

  describe('noGrad', () => {
    it('an async function is an error (recording would resume after its first await)', async () => {
      const x = kiln.tensor([1, 2]).setRequiresGrad(true);
      let after: kiln.Tensor | undefined;
      expectThrows(() => kiln.noGrad(async () => {
        await Promise.resolve();
        after = x.mul(2);
      }), 'noGrad: fn returned a Promise', 'synchronous');
      await new Promise((r) => setTimeout(r, 0));
      // Recording is on again outside noGrad, as before the call.
      expect(after!.requiresGrad).toBe(true);
      const y = kiln.noGrad(() => x.mul(3));
      expect(y.requiresGrad).toBe(false);
      kiln.dispose([x, after!, y]);
    });
  });

  describe('crossEntropy', () => {
    it('a -Inf logit at the target gives +Inf (as PyTorch), also with smoothing and class weights', () => {
      const logits = kiln.tensor([-Infinity, 0, 1, 2, 0, -Infinity], [2, 3]);
      const targets = kiln.tensor([0, 1], [2], 'int32');
      const none = kiln.crossEntropy(logits, targets, { reduction: 'none' });
      const row1 = Math.log(Math.exp(2) + 1) - 0;
      const got = Array.from(none.dataSync());
      expect(got[0]).toBe(Infinity);
      expect(got[1]).toBeCloseTo(row1, 5);
      const smoothed = kiln.crossEntropy(logits, targets, { reduction: 'none', labelSmoothing: 0.1 });
      expect(Array.from(smoothed.dataSync())).toEqual([Infinity, Infinity]);
      // A zero weight on the -Inf class: that class contributes nothing (not 0 * Inf = NaN).
      const w = kiln.tensor([1, 1, 0]);
      const weighted = kiln.crossEntropy(logits, targets, { reduction: 'none', weights: w });
      expect(Array.from(weighted.dataSync())[1]).toBeCloseTo(row1, 5);
      // A -Inf logit elsewhere than the target is an ordinary, finite loss.
      const finite = kiln.crossEntropy(logits, kiln.tensor([1, 0], [2], 'int32'), { reduction: 'none' });
      expect(Array.from(finite.dataSync()).every(Number.isFinite)).toBe(true);
      kiln.dispose([logits, targets, none, smoothed, w, weighted, finite]);
    });
  });
});
