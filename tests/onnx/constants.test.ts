/**
 * An imported model's small constants (Reshape's target shape, a fused GELU's scalars) are read
 * back once (ts/onnx/constants.ts), not on every run, and a constant written in place (kiln.assign)
 * or replaced (loadStateDict) is read again before the next run uses it: the outputs match the
 * plain definition (a reshape, the composed GELU) after each change.
 */
import { describe, expect, it, vi } from 'vitest';
import * as kiln from '../../ts/index.js';
import { backend } from '../../ts/engine.js';
import { forEachBackend } from '../backends.js';
import { modelBytes } from './graphs.js';

/** y = Reshape(x, target) · h · (1 + Erf(· / √2)): torch's GELU spelling (h = 0.5) after a reshape by an int32 initializer. */
function reshapeGelu(target: number[], h: number): Uint8Array {
  return modelBytes({
    nodes: [
      { opType: 'Reshape', input: ['x', 'target'], output: ['r'], name: 'reshape' },
      { opType: 'Div', input: ['r', 'sqrt2'], output: ['s'], name: 'div' },
      { opType: 'Erf', input: ['s'], output: ['e'], name: 'erf' },
      { opType: 'Add', input: ['one', 'e'], output: ['p'], name: 'add' },
      { opType: 'Mul', input: ['r', 'p'], output: ['m'], name: 'mul' },
      { opType: 'Mul', input: ['m', 'half'], output: ['y'], name: 'half' },
    ],
    inputs: [['x', [2, 6]]],
    outputs: ['y'],
    initializers: {
      target: kiln.tensor(target, [target.length], 'int32'),
      sqrt2: kiln.tensor([Math.SQRT2], []),
      one: kiln.tensor([1], []),
      half: kiln.tensor([h], []),
    },
  });
}

/** The definition: x · h · (1 + erf(x / √2)) (erf by Abramowitz-Stegun 7.1.26, |error| < 1.5e-7). */
function gelu(x: number[], h: number): number[] {
  const erf = (v: number): number => {
    const t = 1 / (1 + 0.3275911 * Math.abs(v));
    const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-v * v);
    return v < 0 ? -y : y;
  };
  return x.map((v) => v * h * (1 + erf(v / Math.SQRT2)));
}

forEachBackend(() => {
  describe('onnx.load constants', () => {
    it('reads a Reshape target and GELU scalars back once, and again after kiln.assign or loadStateDict changes them', () => {
      const imported = kiln.onnx.load(reshapeGelu([3, 4], 0.5));
      const x = kiln.randn([2, 6], { seed: 3 });
      const xs = Array.from(x.dataSync());
      const run = (): { shape: number[]; data: number[] } => kiln.noGrad(() => kiln.tidy(() => {
        const y = imported.forward(x);
        return { shape: [...y.shape], data: Array.from(y.dataSync()) };
      }));
      const expectGelu = (got: { shape: number[]; data: number[] }, shape: number[], h: number): void => {
        expect(got.shape).toEqual(shape);
        gelu(xs, h).forEach((w, i) => expect(Math.abs(got.data[i] - w)).toBeLessThan(1e-5));
      };
      expectGelu(run(), [3, 4], 0.5);
      // Later runs read back the output alone: no int32 read (the target), one float32 read (y).
      const impl = backend().impl;
      const [readI32, readF32] = [vi.spyOn(impl, 'readI32'), vi.spyOn(impl, 'readF32')];
      expectGelu(run(), [3, 4], 0.5);
      expect(readI32).not.toHaveBeenCalled();
      expect(readF32).toHaveBeenCalledTimes(1);
      vi.restoreAllMocks();

      // The scalar written in place (0.4: no longer GELU, the original nodes run). (kiln.assign
      // takes float32 tensors only: an int32 constant changes by loadStateDict.)
      kiln.noGrad(() => kiln.tidy(() => kiln.assign(imported.stateDict().half, kiln.tensor([0.4], []))));
      expectGelu(run(), [3, 4], 0.4);
      expectGelu(run(), [3, 4], 0.4);

      // Replaced by loadStateDict: new values under the same names.
      imported.loadStateDict({ ...imported.stateDict(), target: kiln.tensor([6, 2], [2], 'int32'), half: kiln.tensor([0.5], []) });
      expectGelu(run(), [6, 2], 0.5);
      expectGelu(run(), [6, 2], 0.5);
      x.dispose();
      imported.dispose();
    });
  });
});
