/**
 * maxPool2d and avgPool2d (NCHW) against tfjs-backend-cpu's maxPool / avgPool / pool (NHWC, so the
 * inputs and results are transposed), their gradients against finite differences, and bad input.
 */
import { expect, it } from 'vitest';
import * as kiln from '../ts/index.js';
import type { Padding2d } from '../ts/index.js';
import { forEachBackend } from './backends.js';
import { gradCheck, separated, uniform } from './gradcheck.js';
import { T, assertClose, expectThrows, expectEveryTestToFreeItsTensors, randND, read } from './helpers.js';
import type { ND } from './reference.js';
import { tf, tfEval, tfT } from './tf.js';

/** tfjs on an NCHW array: transposed to NHWC, pooled, transposed back. */
function tfPool(x: ND, fn: (nhwc: tf.Tensor4D) => tf.Tensor4D) {
  return tfEval(() => tf.transpose(fn(tf.transpose(tfT(x), [0, 2, 3, 1]) as tf.Tensor4D), [0, 3, 1, 2]));
}

type TfPad = 'valid' | 'same' | number | [[number, number], [number, number], [number, number], [number, number]];

interface Case {
  name: string;
  shape: number[];
  kernel: [number, number];
  stride: [number, number];
  /** Kiln's padding and the same padding for tfjs. */
  padding: Padding2d;
  tfPad: TfPad;
}

const CASES: Case[] = [
  { name: '2x2 stride 2, valid', shape: [2, 3, 8, 8], kernel: [2, 2], stride: [2, 2], padding: 'valid', tfPad: 'valid' },
  { name: '3x3 stride 2, same (odd input)', shape: [2, 2, 7, 9], kernel: [3, 3], stride: [2, 2], padding: 'same', tfPad: 'same' },
  { name: '3x3 stride 1, padding 1', shape: [1, 3, 6, 5], kernel: [3, 3], stride: [1, 1], padding: 1, tfPad: 1 },
  { name: '2x3 stride (1, 2), explicit [1, 0, 2, 1]', shape: [2, 2, 6, 7], kernel: [2, 3], stride: [1, 2], padding: [1, 0, 2, 1], tfPad: [[0, 0], [1, 0], [2, 1], [0, 0]] },
  { name: 'stride > kernel: 2x2 stride 3', shape: [1, 2, 10, 11], kernel: [2, 2], stride: [3, 3], padding: 0, tfPad: 'valid' },
  { name: 'rows wider than a vector group, same', shape: [1, 2, 5, 41], kernel: [2, 2], stride: [1, 1], padding: 'same', tfPad: 'same' },
  // No left/right padding: WASM's SIMD128 path (whole vector groups of windows, then a tail).
  { name: '2x2 stride 2, wide rows', shape: [2, 3, 6, 38], kernel: [2, 2], stride: [2, 2], padding: 'valid', tfPad: 'valid' },
  { name: '3x3 stride 2, wide rows', shape: [1, 3, 9, 35], kernel: [3, 3], stride: [2, 2], padding: 'valid', tfPad: 'valid' },
  { name: '3x3 stride 1, wide rows', shape: [1, 2, 5, 23], kernel: [3, 3], stride: [1, 1], padding: 'valid', tfPad: 'valid' },
  { name: '2x2 stride 3, wide rows', shape: [1, 2, 7, 40], kernel: [2, 2], stride: [3, 3], padding: 'valid', tfPad: 'valid' },
  { name: '3x3 stride 2, rows padded only [1, 1, 0, 0]', shape: [1, 2, 9, 21], kernel: [3, 3], stride: [2, 2], padding: [1, 1, 0, 0], tfPad: [[0, 0], [1, 1], [0, 0], [0, 0]] },
];

/**
 * Pools `planes` h x w planes of x with kh x kw windows at stride 2 and checks every output
 * against the definition PyTorch follows: NaN if the window holds one, else its max, +0 for a
 * window of zeros of either sign. `where(t)` names plane t in a failure.
 */
async function expectStrideTwoMaxima(x: Float32Array, [planes, h, w]: number[], [kh, kw]: number[], where: (t: number) => string) {
  const y = kiln.tidy(() => kiln.maxPool2d(kiln.tensor(x, [1, planes, h, w]), [kh, kw], { stride: 2 }));
  const [oh, ow] = [y.shape[2], y.shape[3]];
  const got = await read(y);
  y.dispose();
  for (let t = 0; t < planes; t++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        const win = [];
        for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) win.push(x[t * h * w + (2 * oy + i) * w + 2 * ox + j]);
        const want = win.some(Number.isNaN) ? NaN : Math.max(...win) + 0;
        const at = (t * oh + oy) * ow + ox;
        if (!Object.is(got[at], want)) expect.fail(`${kh}x${kw} ${h}x${w}, ${where(t)}: window (${oy}, ${ox}) ${got[at]} vs ${want}`);
      }
    }
  }
}

forEachBackend(() => {
  expectEveryTestToFreeItsTensors();

  it('maxPool2d matches tfjs maxPool (stride != kernel, same/explicit padding)', async () => {
    for (const [i, c] of CASES.entries()) {
      const x = randND(c.shape, 100 + i);
      const want = tfPool(x, (t) => tf.maxPool(t, c.kernel, c.stride, c.tfPad as never));
      const y = kiln.tidy(() => kiln.maxPool2d(T(x), c.kernel, { stride: c.stride, padding: c.padding }));
      expect([...y.shape], c.name).toEqual(want.shape);
      assertClose(await read(y), want.data, { atol: 0, rtol: 0 }, `maxPool2d ${c.name}`);
      y.dispose();
    }
  });

  it('avgPool2d matches tfjs avgPool (which divides by the taps inside the input: countIncludePad false)', async () => {
    for (const [i, c] of CASES.entries()) {
      const x = randND(c.shape, 200 + i);
      const want = tfPool(x, (t) => tf.avgPool(t, c.kernel, c.stride, c.tfPad as never));
      const y = kiln.tidy(() => kiln.avgPool2d(T(x), c.kernel, { stride: c.stride, padding: c.padding, countIncludePad: false }));
      expect([...y.shape], c.name).toEqual(want.shape);
      assertClose(await read(y), want.data, { atol: 1e-6, rtol: 1e-5 }, `avgPool2d ${c.name}`);
      y.dispose();
    }
  });

  it('avgPool2d countIncludePad (the default) divides border windows by the whole kernel', async () => {
    // Padding 1 around a 2x2 plane of ones, kernel 2 stride 1: every window holds one, two or four
    // ones out of four taps.
    const ones = kiln.ones([1, 1, 2, 2]);
    const y = kiln.avgPool2d(ones, 2, { stride: 1, padding: 1 });
    assertClose(await read(y), [0.25, 0.5, 0.25, 0.5, 1, 0.5, 0.25, 0.5, 0.25]);
    const z = kiln.avgPool2d(ones, 2, { stride: 1, padding: 1, countIncludePad: false });
    assertClose(await read(z), new Array(9).fill(1));
    kiln.dispose([ones, y, z]);
  });

  it('dilation matches tfjs pool (dilated max pooling)', async () => {
    // 'valid' only: tfjs pads dilated pooling with zeros (space-to-batch), which then win over
    // negative values; dilation with padding is checked against the definition in Rust (tests/pool.rs).
    const x = randND([1, 2, 9, 10], 300);
    const want = tfPool(x, (t) => tf.pool(t, [3, 2], 'max', 'valid', [2, 3], 1));
    const y = kiln.tidy(() => kiln.maxPool2d(T(x), [3, 2], { stride: 1, dilation: [2, 3] }));
    expect([...y.shape]).toEqual(want.shape);
    assertClose(await read(y), want.data, { atol: 0, rtol: 0 }, 'dilation [2, 3]');
    y.dispose();
  });

  it('gradients match finite differences', async () => {
    // Distinct values 0.1 apart: no window's maximum changes under the finite-difference step.
    const x = separated([2, 2, 5, 6]);
    const windows: Array<[number | [number, number], kiln.MaxPool2dOptions]> = [
      [2, {}],
      [3, { stride: 2, padding: 1 }],
      [[2, 3], { stride: [1, 2], padding: [0, 1, 1, 1] }],
      [2, { stride: 1, dilation: 2 }],
    ];
    for (const [kernel, options] of windows) {
      const name = `kernel ${JSON.stringify(kernel)} ${JSON.stringify(options)}`;
      await gradCheck(`maxPool2d ${name}`, [x], ([t]) => kiln.maxPool2d(t, kernel, options));
      for (const countIncludePad of [true, false]) {
        const avgOptions = { stride: options.stride, padding: options.padding, countIncludePad };
        await gradCheck(`avgPool2d ${name} countIncludePad ${countIncludePad}`, [uniform([2, 2, 5, 6], 7)], ([t]) => kiln.avgPool2d(t, kernel, avgOptions));
      }
    }
  });

  it('maxPool2d: a NaN wins every window it is in; -0 and +0 give +0', async () => {
    // Wide rows, so that the NaN and the zeros land in whole vector groups of windows on WASM.
    const [h, w] = [4, 20];
    const x = new Float32Array(h * w).map((_, i) => (i % 7) - 3);
    x[1 * w + 5] = NaN; // in window (0, 2) of the 2x2 stride-2 pooling
    x.fill(-0, 2 * w + 8, 2 * w + 10);
    x.fill(-0, 3 * w + 8, 3 * w + 10); // window (1, 4): all -0
    x[2 * w + 12] = 0; // window (1, 6): +0 and three -0
    x.fill(-0, 2 * w + 13, 2 * w + 14);
    x.fill(-0, 3 * w + 12, 3 * w + 14);
    const y = kiln.tidy(() => kiln.maxPool2d(kiln.tensor(x, [1, 1, h, w]), 2));
    const got = await read(y);
    y.dispose();
    for (let oy = 0; oy < h / 2; oy++) {
      for (let ox = 0; ox < w / 2; ox++) {
        const win = [0, 1].flatMap((i) => [0, 1].map((j) => x[(2 * oy + i) * w + 2 * ox + j]));
        const want = win.some(Number.isNaN) ? NaN : Math.max(...win) + 0;
        expect(Object.is(got[oy * (w / 2) + ox], want), `window (${oy}, ${ox}): ${got[oy * (w / 2) + ox]} vs ${want}`).toBe(true);
      }
    }
  });

  it('maxPool2d: a NaN at any tap of a 2x2, 2x3, 3x2 or 3x3 stride-2 window wins that window', async () => {
    // One plane per tap position of window (1, 5), each with a single NaN there: on WASM each
    // position reaches the SIMD128 kernel's maxima as a different operand (kept or probed). Then
    // the same for window (3, 5) of the last output row (the 3x3/2 kernel pools two output rows
    // per pass, and probes each input row with the first pass that reads it).
    for (const [kh, kw] of [[2, 2], [2, 3], [3, 2], [3, 3]]) {
      const [h, w] = [2 * 3 + kh, 2 * 13 + kw];
      const taps = kh * kw;
      const planes = 2 * taps;
      const x = new Float32Array(planes * h * w).map((_, i) => ((i * 7) % 11) - 5);
      for (let t = 0; t < planes; t++) x[t * h * w + ((t < taps ? 2 : 6) + Math.floor((t % taps) / kw)) * w + 10 + (t % kw)] = NaN;
      await expectStrideTwoMaxima(x, [planes, h, w], [kh, kw], (t) => `tap ${t}`);
    }
  });

  it('maxPool2d: a NaN anywhere in a stride-2 plane wins exactly the windows that read it', async () => {
    // One plane per input position, each with a single NaN there. On WASM the stride-2 kernels
    // find a NaN by adding up every value their windows read, once, as they pool: every position
    // must reach that sum (first and last rows and columns, the last window's third column, a
    // row of whole vector groups and one with a tail group), and a NaN no window reads (the last
    // row or column when the windows end before it) changes nothing.
    for (const [kh, kw] of [[2, 2], [2, 3], [3, 2], [3, 3]]) {
      for (const [h, w] of [[2 * 3 + kh, 2 * 7 + kw], [2 * 3 + kh + 1, 2 * 9 + kw], [2 * 4 + kh, 2 * 8 + kw + 1]]) {
        const planes = h * w;
        const x = new Float32Array(planes * h * w).map((_, i) => ((i * 7) % 13) - 6);
        for (let t = 0; t < planes; t++) x[t * h * w + t] = NaN;
        await expectStrideTwoMaxima(x, [planes, h, w], [kh, kw], (t) => `NaN at ${Math.floor(t / w)}, ${t % w}`);
      }
    }
  });

  it('maxPool2d: a tie sends the whole gradient to the first maximum (PyTorch)', async () => {
    const x = kiln.tensor([[[[1, 3], [3, 2]]]]).setRequiresGrad();
    kiln.tidy(() => kiln.maxPool2d(x, 2).sum().backward());
    const g = x.grad!;
    expect(await read(g)).toEqual([0, 1, 0, 0]);
    kiln.dispose([g, x]);
  });

  it('rejects bad input with the op, shapes and dtypes in the message', () => {
    kiln.tidy(() => {
      const x = kiln.zeros([1, 2, 4, 4]);
      expectThrows(() => kiln.maxPool2d(kiln.zeros([2, 4, 4]), 2), 'maxPool2d', 'expected a float32 [batch, channels, height, width] tensor', 'float32 [2, 4, 4]');
      expectThrows(() => kiln.avgPool2d(kiln.zeros([1, 1, 4, 4], 'int32'), 2), 'avgPool2d', 'int32 [1, 1, 4, 4]');
      expectThrows(() => kiln.maxPool2d(x, 0), 'maxPool2d: kernelSize must be a positive integer or [height, width]', '0');
      expectThrows(() => kiln.maxPool2d(x, 2.5), 'maxPool2d: kernelSize must be a positive integer');
      expectThrows(() => kiln.maxPool2d(x, [2, 2, 2] as never), 'maxPool2d: kernelSize');
      expectThrows(() => kiln.avgPool2d(x, 2, { stride: 0 }), 'avgPool2d: stride must be a positive integer');
      expectThrows(() => kiln.maxPool2d(x, 2, { padding: -1 }), 'maxPool2d: padding must be');
      expectThrows(() => kiln.maxPool2d(x, 2, { padding: 'full' as never }), 'maxPool2d: padding must be', '"full"');
      expectThrows(() => kiln.avgPool2d(x, 2, { countIncludePad: 1 as never }), 'avgPool2d: countIncludePad must be a boolean');
      expectThrows(() => kiln.maxPool2d(x, 5), 'maxPool2d', 'spans 5 rows but the padded input float32 [1, 2, 4, 4] has only 4');
      expectThrows(() => kiln.maxPool2d(x, 2, { padding: [0, 0, 2, 0] }), 'maxPool2d', 'output column 0', 'covers only padding');
      expectThrows(() => kiln.maxPool2d([1, 2] as never, 2), "maxPool2d: argument 'x' must be a Tensor");
    });
  });
});
