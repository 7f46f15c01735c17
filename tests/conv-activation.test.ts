/**
 * conv2d's fused epilogue: the activation (`activation: 'relu' | 'leakyRelu' | 'elu' | 'sigmoid' |
 * 'tanh'`) and the residual (`residual`: added before the activation): the same values as
 * conv2d followed by the add and the activation ops, gradients against finite differences
 * (smooth activations) and against the composed ops (relu, leakyRelu: finite differences would
 * straddle their kink), depthwise, strided and direct-kernel geometries, and bad input.
 */
import { expect, it } from 'vitest';
import * as kiln from '../ts/index.js';
import type { Tensor } from '../ts/index.js';
import { forEachBackend } from './backends.js';
import { T, assertClose, expectThrows, randND, read } from './helpers.js';
import { gradCheck, uniform } from './gradcheck.js';

const TOL = { atol: 1e-5, rtol: 1e-4 };

/** The activation as its own op, the reference the fused form must equal. */
function separate(y: Tensor, activation: kiln.ConvActivation, alpha: number): Tensor {
  switch (activation) {
    case 'relu':
      return kiln.relu(y);
    case 'leakyRelu':
      return kiln.leakyRelu(y, alpha);
    case 'elu':
      return kiln.elu(y, alpha);
    case 'sigmoid':
      return kiln.sigmoid(y);
    case 'tanh':
      return kiln.tanh(y);
  }
}

const CASES: Array<[kiln.ConvActivation, number]> = [['relu', 0], ['leakyRelu', 0.2], ['elu', 0.7], ['sigmoid', 0], ['tanh', 0]];

forEachBackend(() => {
  it('equals conv2d followed by the activation: dense, strided with bias, pointwise and depthwise', async () => {
    // [input, weight, options]
    const geometries: Array<[number[], number[], kiln.Conv2dOptions]> = [
      [[2, 3, 9, 8], [5, 3, 3, 3], { padding: 1 }],
      [[1, 4, 11, 11], [6, 4, 3, 3], { stride: 2, padding: 'same' }],
      [[2, 6, 5, 5], [7, 6, 1, 1], {}],
      [[2, 4, 7, 7], [4, 1, 3, 3], { groups: 4, padding: 1 }],
    ];
    let seed = 1;
    for (const [xs, ws, options] of geometries) {
      const x = T(randND(xs, seed++));
      const w = T(randND(ws, seed++));
      const bias = T(randND([ws[0]], seed++));
      for (const [activation, alpha] of CASES) {
        const label = `x [${xs}] w [${ws}] ${JSON.stringify(options)} ${activation}`;
        const want = kiln.tidy(() => separate(kiln.conv2d(x, w, { ...options, bias }), activation, alpha));
        const got = kiln.conv2d(x, w, { ...options, bias, activation, alpha });
        expect(got.shape, label).toEqual(want.shape);
        assertClose(await read(got), await read(want), TOL, label);
        kiln.dispose([got, want]);
      }
      kiln.dispose([x, w, bias]);
    }
  });

  it('gradients match finite differences for the smooth activations (elu with alpha 1, sigmoid, tanh)', async () => {
    // elu's slope jumps from alpha to 1 at 0 unless alpha is 1: a difference quotient there is off.
    const smooth: Array<[kiln.ConvActivation, number]> = [['elu', 1], ['sigmoid', 0], ['tanh', 0]];
    for (const [activation, alpha] of smooth) {
      await gradCheck(`conv2d ${activation}`, [uniform([2, 4, 6, 5], 1), uniform([4, 2, 3, 2], 2), uniform([4], 3)], ([x, w, b]) =>
        kiln.conv2d(x, w, { stride: 2, padding: [1, 2, 2, 1], groups: 2, bias: b, activation, alpha }),
      );
    }
  });

  it('gradients of relu and leakyRelu equal those of the composed ops', async () => {
    for (const [activation, alpha] of CASES.filter(([a]) => a === 'relu' || a === 'leakyRelu')) {
      const grads = async (fused: boolean): Promise<number[][]> => {
        const [x, w, b] = [T(randND([2, 3, 6, 6], 7)), T(randND([4, 3, 3, 3], 8)), T(randND([4], 9))].map((t) => t.setRequiresGrad());
        const weights = T(randND([2, 4, 6, 6], 10));
        kiln.tidy(() => {
          const y = fused ? kiln.conv2d(x, w, { padding: 1, bias: b, activation, alpha }) : separate(kiln.conv2d(x, w, { padding: 1, bias: b }), activation, alpha);
          y.mul(weights).sum().backward();
        });
        // Read asynchronously: the same file runs on WebGPU in a page (tests/browser).
        const out = await Promise.all([x, w, b].map((t) => read(t.grad!)));
        kiln.dispose([x, w, b, weights]);
        return out;
      };
      const [fused, composed] = [await grads(true), await grads(false)];
      fused.forEach((g, i) => assertClose(g, composed[i], TOL, `${activation} gradient of input ${i}`));
    }
  });

  it('a residual is added before the activation: dense, direct-kernel (8+ channels, batch 1), pointwise and depthwise', async () => {
    const geometries: Array<[number[], number[], kiln.Conv2dOptions]> = [
      [[2, 3, 9, 8], [5, 3, 3, 3], { padding: 1 }],
      [[1, 16, 7, 7], [37, 16, 3, 3], { padding: 1 }],
      [[2, 12, 6, 5], [20, 12, 3, 3], { padding: [1, 0, 2, 1] }],
      [[2, 6, 5, 5], [7, 6, 1, 1], {}],
      [[1, 4, 11, 11], [6, 4, 3, 3], { stride: 2, padding: 'same' }],
      [[2, 4, 7, 7], [4, 1, 3, 3], { groups: 4, padding: 1 }],
    ];
    let seed = 30;
    for (const [xs, ws, options] of geometries) {
      const x = T(randND(xs, seed++));
      const w = T(randND(ws, seed++));
      const bias = T(randND([ws[0]], seed++));
      const shape = kiln.tidy(() => kiln.conv2d(x, w, options).shape);
      const residual = T(randND(shape, seed++));
      for (const [activation, alpha] of [...CASES, [null, 0] as const]) {
        const label = `x [${xs}] w [${ws}] ${JSON.stringify(options)} ${activation} + residual`;
        const want = kiln.tidy(() => {
          const sum = kiln.conv2d(x, w, { ...options, bias }).add(residual);
          return activation === null ? sum : separate(sum, activation, alpha);
        });
        const got = kiln.conv2d(x, w, { ...options, bias, residual, activation, alpha });
        expect(got.shape, label).toEqual(want.shape);
        assertClose(await read(got), await read(want), TOL, label);
        kiln.dispose([got, want]);
      }
      kiln.dispose([x, w, bias, residual]);
    }
  });

  it('with a residual, gradients (the residual\'s included) match finite differences, and those of the composed ops for relu', async () => {
    for (const [activation, alpha] of [['tanh', 0], [null, 0]] as const) {
      await gradCheck(`conv2d + residual, ${activation}`, [uniform([2, 4, 6, 5], 41), uniform([4, 2, 3, 2], 42), uniform([4], 43), uniform([2, 4, 4, 4], 44)], ([x, w, b, r]) =>
        kiln.conv2d(x, w, { stride: 2, padding: [1, 2, 2, 1], groups: 2, bias: b, residual: r, activation, alpha }),
      );
    }
    const grads = async (fused: boolean): Promise<number[][]> => {
      const [x, w, b, r] = [T(randND([1, 9, 6, 6], 45)), T(randND([10, 9, 3, 3], 46)), T(randND([10], 47)), T(randND([1, 10, 6, 6], 48))].map((t) => t.setRequiresGrad());
      const weights = T(randND([1, 10, 6, 6], 49));
      kiln.tidy(() => {
        const y = fused ? kiln.conv2d(x, w, { padding: 1, bias: b, residual: r, activation: 'relu' }) : kiln.relu(kiln.conv2d(x, w, { padding: 1, bias: b }).add(r));
        y.mul(weights).sum().backward();
      });
      const out = await Promise.all([x, w, b, r].map((t) => read(t.grad!)));
      kiln.dispose([x, w, b, r, weights]);
      return out;
    };
    const [fused, composed] = [await grads(true), await grads(false)];
    fused.forEach((g, i) => assertClose(g, composed[i], TOL, `relu + residual gradient of input ${i}`));
  });

  it('bad input: a residual of another shape or dtype is an error naming conv2d and both shapes', () => {
    const x = T(randND([2, 3, 5, 5], 50));
    const w = T(randND([4, 3, 3, 3], 51));
    const wide = T(randND([2, 4, 5, 5], 52));
    const ints = kiln.zeros([2, 4, 3, 3], 'int32');
    expectThrows(() => kiln.conv2d(x, w, { residual: wide }), 'conv2d', "residual must be float32 [2, 4, 3, 3] (the output's shape)", 'got float32 [2, 4, 5, 5]');
    expectThrows(() => kiln.conv2d(x, w, { residual: ints, activation: 'relu' }), 'conv2d', "residual must be float32 [2, 4, 3, 3]", 'got int32 [2, 4, 3, 3]');
    expectThrows(() => kiln.conv2d(x, w, { residual: 3 as unknown as Tensor }), 'conv2d', "argument 'residual' must be a Tensor");
    kiln.dispose([x, w, wide, ints]);
  });

  it('bad input: an activation it cannot fuse or a negative slope is an error naming conv2d', () => {
    const x = T(randND([1, 2, 4, 4], 20));
    const w = T(randND([3, 2, 3, 3], 21));
    expectThrows(() => kiln.conv2d(x, w, { activation: 'gelu' as kiln.ConvActivation }), 'conv2d', "activation must be one of relu, leakyRelu, elu, sigmoid, tanh", "'gelu'");
    expectThrows(() => kiln.conv2d(x, w, { activation: 'leakyRelu', alpha: -0.1 }), 'conv2d', 'alpha >= 0', '-0.1');
    expectThrows(() => kiln.conv2d(x, w, { activation: 'elu', alpha: Number.NaN }), 'conv2d', 'alpha >= 0', 'NaN');
    kiln.dispose([x, w]);
  });
});
