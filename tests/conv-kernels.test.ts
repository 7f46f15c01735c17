/**
 * The direct convolution kernels beside im2col + GEMM (crates/kiln-core/src/ops/conv/): the one
 * for depthwise convolutions (a single input channel per group, any channel multiplier), and on
 * WASM Winograd F(2x2, 3x3) for the forward pass of 3x3 stride-1 convolutions (8+ channels). Each pass -- forward, input gradient, weight
 * gradient -- is checked against the same convolution routed through im2col + GEMM, and against
 * finite differences, on odd shapes: strides, asymmetric padding, dilation, batch 1, channel
 * counts and widths that are not whole SIMD vectors.
 */
import { it } from 'vitest';
import * as kiln from '../ts/index.js';
import type { Tensor } from '../ts/index.js';
import { forEachBackend } from './backends.js';
import { T, assertClose, randND, read } from './helpers.js';
import { gradCheck, uniform } from './gradcheck.js';

const TOL = { atol: 1e-4, rtol: 1e-4 };

/** The mask [C·mult, C, 1, 1] that spreads a depthwise weight [C·mult, 1, kh, kw] over all C
 * input channels, zero except where filter o reads channel floor(o / mult). */
function depthwiseMask(channels: number, mult: number): Tensor {
  const mask = new Float32Array(channels * mult * channels);
  for (let o = 0; o < channels * mult; o++) mask[o * channels + Math.floor(o / mult)] = 1;
  return kiln.tensor(mask, [channels * mult, channels, 1, 1]);
}

/** The same convolution as one group of all C input channels, so it runs on im2col + GEMM: the
 * depthwise weight spread over every channel, zeros elsewhere. */
function throughIm2col(x: Tensor, w: Tensor, opts: kiln.Conv2dOptions): Tensor {
  const c = x.shape[1];
  return kiln.conv2d(x, kiln.mul(w, depthwiseMask(c, w.shape[0] / c)), { ...opts, groups: 1 });
}

/** Float64 conv2d, stride 1, no dilation, padding `pad` on every side: x [n, c, h, w], w [o, c, k, k]. */
function referenceConv2d(x: Float32Array, [n, c, h, wd]: number[], w: Float32Array, o: number, k: number, pad: number, bias: Float32Array): Float64Array {
  const [oh, ow] = [h + 2 * pad - k + 1, wd + 2 * pad - k + 1];
  const out = new Float64Array(n * o * oh * ow);
  for (let b = 0; b < n; b++)
    for (let oc = 0; oc < o; oc++)
      for (let y = 0; y < oh; y++)
        for (let xq = 0; xq < ow; xq++) {
          let s = bias[oc];
          for (let ic = 0; ic < c; ic++)
            for (let i = 0; i < k; i++)
              for (let j = 0; j < k; j++) {
                const [iy, ix] = [y + i - pad, xq + j - pad];
                if (iy >= 0 && iy < h && ix >= 0 && ix < wd) s += x[((b * c + ic) * h + iy) * wd + ix] * w[((oc * c + ic) * k + i) * k + j];
              }
          out[((b * o + oc) * oh + y) * ow + xq] = s;
        }
  return out;
}

forEachBackend(() => {
  it('3x3 stride-1 forward (Winograd F(2x2, 3x3) on WASM) equals a float64 reference on odd shapes', async () => {
    // [input NCHW, filters, padding]: partial tiles (odd sizes), padding 0 to 2, several bands of
    // tile rows per image (40 rows), conv2d-b's 64 channels.
    const cases: Array<[number[], number, number]> = [
      [[2, 8, 9, 21], 5, 1],
      [[1, 16, 7, 7], 3, 0],
      [[3, 9, 5, 6], 4, 2],
      [[1, 8, 40, 37], 2, 1],
      [[2, 64, 16, 16], 16, 1],
    ];
    let seed = 400;
    for (const [xs, o, pad] of cases) {
      const [x, w, b] = [randND(xs, seed++), randND([o, xs[1], 3, 3], seed++), randND([o], seed++)];
      const got = kiln.tidy(() => kiln.conv2d(T(x), T(w), { padding: pad, bias: T(b) }));
      const want = referenceConv2d(Float32Array.from(x.data), xs, Float32Array.from(w.data), o, 3, pad, Float32Array.from(b.data));
      // Sums of 9·channels products of values in [-1, 1]: float32 rounding grows with their count.
      const tol = 1e-6 * 9 * xs[1];
      assertClose(await read(got), want, { atol: tol, rtol: tol }, `conv2d x [${xs}] -> ${o} filters, padding ${pad}`);
      got.dispose();
    }
  });

  it('pointwise and few-channel convolutions cut in several bands per image equal a float64 reference (forward with relu, weight gradient)', async () => {
    // Native im2col + GEMM cuts each image's output rows in bands of about 1 MiB of im2col and
    // output rows (engine.rs's Plan): these shapes take 2 uneven bands per image (1x1: 37 rows of
    // (72 + 80)·61 floats; 3x3 on 3 channels, as SqueezeNet's first layer: 67 rows of (27 + 64)·45).
    const cases: Array<[number[], number, number, number]> = [
      [[2, 72, 37, 61], 80, 1, 0],
      [[1, 3, 67, 45], 64, 3, 1],
    ];
    let seed = 450;
    for (const [xs, o, k, pad] of cases) {
      const label = `conv2d x [${xs}] -> ${o} filters ${k}x${k}, padding ${pad}`;
      const [x, w, b, r] = [randND(xs, seed++), randND([o, xs[1], k, k], seed++), randND([o], seed++), randND([xs[0], o, xs[2] + 2 * pad - k + 1, xs[3] + 2 * pad - k + 1], seed++)];
      const y = kiln.tidy(() => kiln.conv2d(T(x), T(w), { padding: pad, bias: T(b), activation: 'relu' }));
      const linear = referenceConv2d(Float32Array.from(x.data), xs, Float32Array.from(w.data), o, k, pad, Float32Array.from(b.data));
      const tol = 1e-6 * k * k * xs[1];
      assertClose(await read(y), linear.map((v) => Math.max(v, 0)), { atol: tol, rtol: tol }, `forward of ${label}`);
      y.dispose();
      // dW[oc, ic, i, j] = Σ dy[n, oc, y, x] · x[n, ic, y + i - pad, x + j - pad], with dy = r (the
      // gradient of Σ r · conv2d(x, w)).
      const [dw] = kiln.grads((wv: Tensor) => kiln.conv2d(T(x), wv, { padding: pad }))([T(w)], T(r));
      const [n, c, h, wd] = xs;
      const [oh, ow] = [h + 2 * pad - k + 1, wd + 2 * pad - k + 1];
      const want = new Float64Array(o * c * k * k);
      for (let bi = 0; bi < n; bi++)
        for (let oc = 0; oc < o; oc++)
          for (let ic = 0; ic < c; ic++)
            for (let i = 0; i < k; i++)
              for (let j = 0; j < k; j++) {
                let s = 0;
                for (let yy = 0; yy < oh; yy++)
                  for (let xx = 0; xx < ow; xx++) {
                    const [iy, ix] = [yy + i - pad, xx + j - pad];
                    if (iy >= 0 && iy < h && ix >= 0 && ix < wd) s += r.data[((bi * o + oc) * oh + yy) * ow + xx] * x.data[((bi * c + ic) * h + iy) * wd + ix];
                  }
                want[((oc * c + ic) * k + i) * k + j] += s;
              }
      // Sums of n·oh·ow products of values in [-1, 1].
      const dwTol = 1e-6 * n * oh * ow;
      assertClose(await read(dw), want, { atol: dwTol, rtol: dwTol }, `weight gradient of ${label}`);
    }
  });

  it('depthwise: forward, input, weight and bias gradients equal im2col + GEMM on odd shapes', async () => {
    // [input NCHW, channel multiplier, kernel, options]
    const cases: Array<[number[], number, [number, number], kiln.Conv2dOptions]> = [
      [[2, 5, 9, 21], 1, [3, 3], { padding: 'same' }],
      [[1, 3, 8, 7], 2, [3, 3], { stride: 2, padding: [1, 0, 1, 1] }],
      [[2, 4, 11, 17], 1, [3, 2], { stride: [1, 2], padding: [2, 1, 0, 3], dilation: [2, 1] }],
      [[1, 2, 6, 40], 3, [1, 3], { stride: [3, 1], padding: [0, 0, 4, 4], dilation: [1, 3] }],
      [[2, 17, 5, 5], 1, [3, 3], { padding: 'valid' }],
      [[3, 2, 13, 13], 6, [5, 5], { padding: 2 }],
      [[2, 3, 28, 28], 4, [3, 3], { padding: 'same', stride: 2 }],
    ];
    let seed = 300;
    for (const [xs, mult, [kh, kw], base] of cases) {
      const c = xs[1];
      const opts = { ...base, groups: c };
      const label = `x [${xs}] multiplier ${mult} kernel ${kh}x${kw} ${JSON.stringify(base)}`;
      const x = T(randND(xs, seed++));
      const w = T(randND([c * mult, 1, kh, kw], seed++));
      const b = T(randND([c * mult], seed++));
      const direct = kiln.grads((xv: Tensor, wv: Tensor, bv: Tensor) => kiln.conv2d(xv, wv, { ...opts, bias: bv }));
      const reference = kiln.grads((xv: Tensor, wv: Tensor, bv: Tensor) => throughIm2col(xv, wv, { ...opts, bias: bv }));
      const y = kiln.conv2d(x, w, { ...opts, bias: b });
      const dy = T(randND([...y.shape], seed++));
      assertClose(await read(y), await read(kiln.noGrad(() => throughIm2col(x, w, { ...opts, bias: b }))), TOL, `forward of ${label}`);
      const got = direct([x, w, b], dy);
      const want = reference([x, w, b], dy);
      for (const [i, pass] of ['input gradient', 'weight gradient', 'bias gradient'].entries()) {
        assertClose(await read(got[i]), await read(want[i]), TOL, `${pass} of ${label}`);
      }
    }
  });

  it('depthwise convTranspose2d (one output channel per group) equals im2col + GEMM', async () => {
    const x = T(randND([2, 6, 5, 7], 320));
    const w = T(randND([6, 1, 3, 3], 321));
    const opts = { stride: 2, padding: 1, outputPadding: 1, groups: 6 } as const;
    // The same transposed convolution with each input channel's filter spread over the 6 outputs.
    const dense = kiln.mul(w.reshape([6, 1, 1, 3, 3]), kiln.eye(6).reshape([6, 6, 1, 1, 1])).reshape([6, 6, 3, 3]);
    const want = kiln.convTranspose2d(x, dense, { stride: 2, padding: 1, outputPadding: 1 });
    assertClose(await read(kiln.convTranspose2d(x, w, opts)), await read(want), TOL, 'depthwise convTranspose2d');
  });

  it('depthwise: gradients match finite differences', async () => {
    await gradCheck('depthwise conv2d, stride 2, dilation, multiplier 2', [uniform([1, 3, 6, 7], 330), uniform([6, 1, 3, 3], 331), uniform([6], 332)], ([x, w, b]) =>
      kiln.conv2d(x, w, { stride: 2, padding: [1, 2, 0, 1], dilation: [1, 2], groups: 3, bias: b }),
    );
    await gradCheck('depthwise conv2d, multiplier 4, even kernel', [uniform([2, 2, 5, 6], 333), uniform([8, 1, 3, 2], 334)], ([x, w]) => kiln.conv2d(x, w, { padding: 'same', groups: 2 }));
    await gradCheck('depthwise convTranspose2d', [uniform([1, 4, 3, 4], 335), uniform([4, 1, 3, 3], 336)], ([x, w]) =>
      kiln.convTranspose2d(x, w, { stride: 2, padding: [1, 0, 0, 2], groups: 4 }),
    );
  });
});
