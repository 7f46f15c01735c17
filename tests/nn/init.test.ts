/** Initializers: fans, bounds and standard deviations as in PyTorch, seeds. */
import { afterEach, beforeEach, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { init } from '../../ts/nn/index.js';
import { forEachBackend } from '../backends.js';
import { expectThrows, read } from '../helpers.js';

const stats = (v: number[]) => {
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
  return { mean, std, maxAbs: Math.max(...v.map(Math.abs)) };
};

forEachBackend(() => {
  let start: number;
  beforeEach(() => {
    start = kiln.memory().numTensors;
  });
  afterEach(() => {
    expect(kiln.memory().numTensors).toBe(start);
  });

  it('computes fans as PyTorch for [out, in, ...kernel]', () => {
    expect(init.computeFans([10, 20])).toEqual({ fanIn: 20, fanOut: 10 });
    expect(init.computeFans([8, 4, 3, 3])).toEqual({ fanIn: 36, fanOut: 72 });
    expect(init.computeFans([7])).toEqual({ fanIn: 7, fanOut: 7 });
  });

  it('draws with the documented bound or std', async () => {
    const shape = [200, 300]; // fanIn 300, fanOut 200
    const cases: Array<[string, kiln.Tensor, 'uniform' | 'normal', number]> = kiln.tidy(() => [
      ['glorotUniform', init.glorotUniform(shape, { seed: 1 }), 'uniform', Math.sqrt(6 / 500)],
      ['xavierNormal', init.xavierNormal(shape, { seed: 2 }), 'normal', Math.sqrt(2 / 500)],
      ['heUniform', init.heUniform(shape, { seed: 3 }), 'uniform', Math.sqrt(6 / 300)],
      ['kaimingNormal', init.kaimingNormal(shape, { seed: 4 }), 'normal', Math.sqrt(2 / 300)],
      ['fanInUniform', init.fanInUniform(shape, { seed: 5 }), 'uniform', 1 / Math.sqrt(300)],
      ['glorotUniform gain 2', init.glorotUniform(shape, { seed: 6, gain: 2 }), 'uniform', 2 * Math.sqrt(6 / 500)],
      ['heNormal fanIn 30', init.heNormal(shape, { seed: 7, fanIn: 30 }), 'normal', Math.sqrt(2 / 30)],
    ]);
    for (const [name, t, kind, scale] of cases) {
      const s = stats(await read(t));
      expect(Math.abs(s.mean), name).toBeLessThan(0.02 * scale + 1e-3);
      if (kind === 'uniform') {
        expect(s.maxAbs, name).toBeLessThanOrEqual(scale);
        expect(s.std / (scale / Math.sqrt(3)), name).toBeCloseTo(1, 1);
      } else {
        expect(s.std / scale, name).toBeCloseTo(1, 1);
      }
      t.dispose();
    }
  });

  it('zeros, ones; same seed same values; names resolve; bad fans throw', async () => {
    const [z, o, a, b] = kiln.tidy(() => [init.zeros([3]), init.ones([2, 2]), init.heNormal([4, 4], { seed: 9 }), init.resolveInit('kaimingNormal', 'test')([4, 4], { seed: 9 })]);
    expect(await read(z)).toEqual([0, 0, 0]);
    expect(await read(o)).toEqual([1, 1, 1, 1]);
    expect(await read(a)).toEqual(await read(b));
    expect(init.deriveSeed(1, 1)).not.toBe(init.deriveSeed(2, 0));
    expect(init.deriveSeed(undefined, 0)).toBeUndefined();
    expectThrows(() => init.heUniform([0, 5]), 'heUniform: fans must be positive');
    kiln.dispose([z, o, a, b]);
  });
});
