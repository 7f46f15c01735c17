/**
 * conv2d and convTranspose2d: parity with tfjs-core's conv2d, depthwiseConv2d and
 * conv2dTranspose (NHWC, so inputs and outputs are transposed), grouped convolution against
 * per-group convolutions, padding forms, finite-difference gradient checks, bad input, memory.
 */
import { expect, it } from 'vitest';
import * as kiln from '../ts/index.js';
import type { Tensor } from '../ts/index.js';
import { forEachBackend } from './backends.js';
import { T, assertClose, expectThrows, randND, read } from './helpers.js';
import { gradCheck, uniform } from './gradcheck.js';
import type { ND } from './reference.js';
import { tf, tfEval, tfT } from './tf.js';

/** float32 sums of up to a few hundred products of values in [-1, 1]. */
const TOL = { atol: 1e-4, rtol: 1e-4 };

/** A Kiln NCHW result as NHWC values, to compare with tfjs. */
async function nhwc(t: Tensor): Promise<Float32Array> {
  const v = kiln.tidy(() => t.permute([0, 2, 3, 1]).contiguous());
  const out = await read(v);
  v.dispose();
  return out;
}

/** tfjs NHWC input from an NCHW reference array. */
const tfInput = (x: ND) => tf.transpose(tfT(x), [0, 2, 3, 1]) as tf.Tensor4D;

forEachBackend(() => {
  it('conv2d matches tfjs conv2d: strides, padding forms, dilation, bias', async () => {
    // [input NCHW, weight OIHW, stride, padding, dilation]
    const cases: Array<[number[], number[], number, kiln.Padding2d, number]> = [
      [[2, 3, 7, 7], [4, 3, 3, 3], 1, 'valid', 1],
      [[2, 3, 7, 7], [4, 3, 3, 3], 1, 'same', 1],
      [[2, 3, 8, 7], [5, 3, 3, 3], 2, 'same', 1], // asymmetric: the extra row/column at the bottom/right
      [[1, 2, 9, 8], [3, 2, 4, 2], 2, 'same', 1], // even kernel
      [[2, 2, 9, 9], [3, 2, 3, 3], 1, 'same', 2],
      [[2, 2, 10, 9], [3, 2, 3, 2], 1, 'valid', 2],
      [[2, 4, 6, 6], [6, 4, 1, 1], 1, 'valid', 1],
      [[3, 3, 11, 10], [4, 3, 3, 3], 3, 1, 1],
      [[2, 8, 12, 12], [16, 8, 3, 3], 1, [1, 2], 1],
    ];
    let seed = 1;
    for (const [xs, ws, stride, padding, dilation] of cases) {
      const x = randND(xs, seed++);
      const w = randND(ws, seed++);
      const b = randND([ws[0]], seed++);
      const label = `x [${xs}] w [${ws}] stride ${stride} padding ${JSON.stringify(padding)} dilation ${dilation}`;
      const tfPad = typeof padding === 'string' ? padding : typeof padding === 'number' ? padding : ([[0, 0], [padding[0], padding[0]], [padding[1], padding[1]], [0, 0]] as tf.backend_util.ExplicitPadding);
      const want = tfEval(() => tf.add(tf.conv2d(tfInput(x), tf.transpose(tfT(w), [2, 3, 1, 0]) as tf.Tensor4D, stride, tfPad, 'NHWC', dilation), tfT(b)));
      const y = kiln.conv2d(T(x), T(w), { stride, padding, dilation, bias: T(b) });
      expect(y.shape, label).toEqual([want.shape[0], want.shape[3], want.shape[1], want.shape[2]]);
      assertClose(await nhwc(y), want.data, TOL, label);
    }
  });

  it('explicit asymmetric padding [top, bottom, left, right] matches tfjs explicit padding', async () => {
    const x = randND([2, 3, 6, 7], 40);
    const w = randND([4, 3, 3, 2], 41);
    const want = tfEval(() => tf.conv2d(tfInput(x), tf.transpose(tfT(w), [2, 3, 1, 0]) as tf.Tensor4D, [2, 1], [[0, 0], [0, 2], [1, 0], [0, 0]]));
    const y = kiln.conv2d(T(x), T(w), { stride: [2, 1], padding: [0, 2, 1, 0] });
    assertClose(await nhwc(y), want.data, TOL, 'explicit padding');
    expect(kiln.conv2d(T(x), T(w), { padding: [1, 2] }).shape).toEqual(kiln.conv2d(T(x), T(w), { padding: [1, 1, 2, 2] }).shape);
  });

  it('groups = channels matches tfjs depthwiseConv2d (channel multiplier 2)', async () => {
    for (const [stride, padding] of [[1, 'same'], [2, 'valid'], [2, 'same']] as const) {
      const [n, c, h, mult, k] = [2, 3, 9, 2, 3];
      const x = randND([n, c, h, h], 50);
      const w = randND([c * mult, 1, k, k], 51);
      // Kiln's depthwise weight [C·mult, 1, k, k] is tfjs's [k, k, C, mult] reordered.
      const filter = () => tf.transpose(tf.reshape(tfT(w), [c, mult, k, k]), [2, 3, 0, 1]) as tf.Tensor4D;
      const want = tfEval(() => tf.depthwiseConv2d(tfInput(x), filter(), stride, padding));
      const y = kiln.conv2d(T(x), T(w), { stride, padding, groups: c });
      assertClose(await nhwc(y), want.data, TOL, `depthwise stride ${stride} ${padding}`);
    }
  });

  it('grouped convolution equals one convolution per group, concatenated', async () => {
    const x = T(randND([2, 6, 7, 7], 60));
    const w6 = T(randND([6, 2, 3, 3], 62));
    const grouped = kiln.conv2d(x, w6, { groups: 3, padding: 1, stride: 2 });
    const parts = [0, 1, 2].map((g) => kiln.conv2d(x.slice([0, 2 * g, 0, 0], [2, 2, 7, 7]), w6.slice([2 * g, 0, 0, 0], [2, 2, 3, 3]), { padding: 1, stride: 2 }));
    assertClose(await read(grouped), await read(kiln.concat(parts, 1)), TOL, 'groups 3');
  });

  it('convTranspose2d matches tfjs conv2dTranspose: same, valid and numeric padding', async () => {
    // [input NCHW, weight [in, out, kh, kw], stride, padding]
    const cases: Array<[number[], number[], number, 'same' | 'valid' | number]> = [
      [[2, 4, 5, 5], [4, 3, 3, 3], 2, 'same'],
      [[2, 4, 5, 6], [4, 3, 2, 2], 2, 'same'],
      [[1, 2, 4, 4], [2, 3, 1, 1], 2, 'same'], // kernel shorter than the stride: output padding
      [[2, 3, 4, 5], [3, 2, 3, 3], 1, 'same'],
      [[2, 3, 4, 5], [3, 2, 3, 3], 2, 'valid'],
      [[2, 3, 5, 4], [3, 5, 4, 3], 3, 'valid'],
      [[2, 3, 5, 5], [3, 2, 3, 3], 2, 1],
    ];
    let seed = 70;
    for (const [xs, ws, stride, padding] of cases) {
      const x = randND(xs, seed++);
      const w = randND(ws, seed++);
      const b = randND([ws[1]], seed++);
      const [n, , h, wd] = xs;
      const [, o, kh, kw] = ws;
      const p = typeof padding === 'number' ? padding : 0;
      const size = (len: number, k: number) => (padding === 'same' ? len * stride : (len - 1) * stride + k - 2 * p);
      const outShape: [number, number, number, number] = [n, size(h, kh), size(wd, kw), o];
      const label = `x [${xs}] w [${ws}] stride ${stride} padding ${padding}`;
      const want = tfEval(() => tf.add(tf.conv2dTranspose(tfInput(x), tf.transpose(tfT(w), [2, 3, 1, 0]) as tf.Tensor4D, outShape, stride, padding), tfT(b)));
      const y = kiln.convTranspose2d(T(x), T(w), { stride, padding, bias: T(b) });
      expect(y.shape, label).toEqual([n, o, outShape[1], outShape[2]]);
      assertClose(await nhwc(y), want.data, TOL, label);
    }
  });

  it('convTranspose2d with outputPadding, dilation and groups has the documented size and undoes conv2d shapes', async () => {
    const x = T(randND([2, 4, 5, 5], 90));
    const w = T(randND([4, 3, 3, 3], 91));
    // (5 - 1)·2 - 2 + 2·(3 - 1) + 1 + 1 = 12
    const y = kiln.convTranspose2d(x, w, { stride: 2, padding: 1, dilation: 2, outputPadding: 1, groups: 2 });
    expect(y.shape).toEqual([2, 6, 12, 12]);
    // A stride-2 conv maps 9 and 10 to 5; outputPadding picks which one the transpose restores.
    const conv = kiln.conv2d(T(randND([1, 6, 10, 10], 92)), T(randND([4, 6, 3, 3], 93)), { stride: 2, padding: 1 });
    expect(conv.shape).toEqual([1, 4, 5, 5]);
    expect(kiln.convTranspose2d(conv, w.slice([0, 0, 0, 0], [4, 3, 3, 3]), { stride: 2, padding: 1 }).shape).toEqual([1, 3, 9, 9]);
    expect(kiln.convTranspose2d(conv, w, { stride: 2, padding: 1, outputPadding: 1 }).shape).toEqual([1, 3, 10, 10]);
  });

  it('conv2d gradients match finite differences: stride 2, padding, dilation 2, groups 2, bias', async () => {
    await gradCheck('conv2d', [uniform([2, 4, 6, 5], 1), uniform([4, 2, 3, 2], 2), uniform([4], 3)], ([x, w, b]) =>
      kiln.conv2d(x, w, { stride: 2, padding: [1, 2, 2, 1], dilation: 2, groups: 2, bias: b }),
    );
    await gradCheck('conv2d same', [uniform([1, 2, 5, 5], 4), uniform([3, 2, 3, 3], 5)], ([x, w]) => kiln.conv2d(x, w, { padding: 'same', stride: 2 }));
    await gradCheck('conv2d of a view', [uniform([1, 5, 4, 2], 6), uniform([2, 2, 2, 2], 7)], ([x, w]) => kiln.conv2d(x.permute([0, 3, 1, 2]), w));
  });

  it('convTranspose2d gradients match finite differences: stride 2, padding, dilation 2, groups 2, bias', async () => {
    await gradCheck('convTranspose2d', [uniform([2, 4, 3, 4], 8), uniform([4, 2, 3, 2], 9), uniform([4], 10)], ([x, w, b]) =>
      kiln.convTranspose2d(x, w, { stride: 2, padding: [1, 0, 0, 2], dilation: 2, groups: 2, outputPadding: [1, 0], bias: b }),
    );
    await gradCheck('convTranspose2d same', [uniform([1, 2, 3, 3], 11), uniform([2, 3, 3, 3], 12)], ([x, w]) => kiln.convTranspose2d(x, w, { padding: 'same', stride: 2 }));
  });

  it('bad input: errors name the op, the shapes and the dtypes', () => {
    const x = T(randND([2, 4, 5, 5], 100));
    const w = T(randND([6, 4, 3, 3], 101));
    expectThrows(() => kiln.conv2d(T(randND([4, 5, 5], 1)), w), 'conv2d', 'input must be float32 [batch, channels, height, width]', '[4, 5, 5]');
    expectThrows(() => kiln.conv2d(kiln.zeros([2, 4, 5, 5], 'int32'), w), 'conv2d', 'int32 [2, 4, 5, 5]');
    expectThrows(() => kiln.conv2d(x, T(randND([6, 3, 3, 3], 1))), 'conv2d', 'expects 3 input channels', '[2, 4, 5, 5]', '[6, 3, 3, 3]');
    expectThrows(() => kiln.conv2d(x, T(randND([6, 1, 3, 3], 1)), { groups: 3 }), 'conv2d', 'input channels (4)', 'divisible by groups (3)');
    expectThrows(() => kiln.conv2d(x, T(randND([6, 4, 7, 3], 1))), 'conv2d', 'larger than the padded input', '5x5');
    expectThrows(() => kiln.conv2d(x, w, { bias: T(randND([5], 1)) }), 'conv2d', 'bias must be float32 [6]', '[5]');
    expectThrows(() => kiln.conv2d(x, w, { stride: 0 }), 'conv2d', 'stride must be an integer >= 1');
    expectThrows(() => kiln.conv2d(x, w, { dilation: [1, 1.5] }), 'conv2d', 'dilation must be an integer >= 1');
    expectThrows(() => kiln.conv2d(x, w, { padding: 'full' as never }), 'conv2d', "padding must be 'same', 'valid'");
    expectThrows(() => kiln.conv2d(x, w, { padding: [1, 2, 3] as never }), 'conv2d', 'padding must be');
    expectThrows(() => kiln.conv2d(x, w, { groups: 0 }), 'conv2d', 'groups must be an integer >= 1');
    expectThrows(() => kiln.conv2d(x, [1, 2] as never), 'conv2d', "argument 'w' must be a Tensor");
    expectThrows(() => kiln.conv2d(x, T(randND([6, 4, 1, 1], 1)), { padding: 4e9 }), 'conv2d', /too many elements|is too large/);
    // 5 + 2·2³¹ rows wraps a 32-bit size (WASM): an error there; on 64-bit, 3 valid output rows.
    try {
      const y = kiln.conv2d(x, T(randND([6, 4, 1, 1], 1)), { padding: [2 ** 31, 2 ** 31, 0, 0], stride: [2 ** 31, 1] });
      expect(y.shape).toEqual([2, 6, 3, 5]);
    } catch (e) {
      expect((e as Error).message).toContain('conv2d: padding [2147483648, 2147483648, 0, 0] (top, bottom, left, right) is too large');
    }
    expectThrows(() => kiln.convTranspose2d(x, T(randND([3, 2, 3, 3], 1))), 'convTranspose2d', 'has 3 input channels, the input has 4');
    expectThrows(() => kiln.convTranspose2d(x, T(randND([4, 2, 3, 3], 1)), { stride: 2, outputPadding: 2 }), 'convTranspose2d', 'outputPadding [2, 2] must be smaller');
    expectThrows(() => kiln.convTranspose2d(x, T(randND([4, 2, 3, 3], 1)), { padding: 'same', outputPadding: 1 }), 'convTranspose2d', 'cannot be combined');
    expectThrows(() => kiln.convTranspose2d(x, T(randND([4, 2, 1, 1], 1)), { padding: [3, 0] }), 'convTranspose2d', 'the output would be empty');
  });

  it('a training step leaks nothing: forward and backward inside tidy', () => {
    const w = kiln.keep(T(randND([4, 3, 3, 3], 110)).setRequiresGrad());
    const x = kiln.keep(T(randND([2, 3, 8, 8], 111)));
    const before = kiln.memory().numTensors;
    for (let i = 0; i < 20; i++) {
      kiln.tidy(() => {
        const y = kiln.convTranspose2d(kiln.conv2d(x, w, { stride: 2, padding: 1 }), w, { stride: 2, padding: 1, outputPadding: 1 });
        y.square().mean().backward();
      });
      w.zeroGrad();
    }
    expect(kiln.memory().numTensors).toBe(before);
    kiln.dispose([w, x]);
  });
});
