/**
 * The NCHWc convolution ops (internal: ts/ops/conv-nchwc.ts): fromNchwc(conv2dNchwc(toNchwc(x),
 * packNchwcFilters(w), ...), O) equals conv2d on random geometries (partial blocks, stride 2,
 * asymmetric pads, dilation, residual, activations) on the CPU backends; the reorders are exact
 * inverses; conv2dNchwcConcat equals conv2dConcat, maxPool2dNchwc maxPool2d and avgPool2dNchwc avgPool2d; bad input and a recorded gradient are errors naming the op. The GPU has no kernel
 * for them (the layout pass never asks it): it says so.
 */
import { expect, it } from 'vitest';
import * as kiln from '../ts/index.js';
import { avgPool2dNchwc, conv2dNchwc, conv2dNchwcConcat, fromNchwc, maxPool2dNchwc, packNchwcFilters, toNchwc } from '../ts/ops/conv-nchwc.js';
import { forEachBackend } from './backends.js';
import { T, assertClose, assertEqual, expectThrows, prng, randND, read } from './helpers.js';

const TOL = { atol: 1e-4, rtol: 1e-4 };

/** Random geometries: channels 16..70 in and 1..70 out (partial blocks), kernels 1..5, strides 1..2, pads per side 0..2, dilation 1..2. */
function geometries(count: number, seed: number) {
  const r = prng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const activations = [undefined, 'relu', 'leakyRelu', 'elu', 'sigmoid', 'tanh'] as const;
  return Array.from({ length: count }, () => {
    const k = int(1, 5);
    const dilation = k > 1 && r() < 0.25 ? 2 : 1;
    const padding: [number, number, number, number] = [int(0, 2), int(0, 2), int(0, 2), int(0, 2)];
    const size = dilation * (k - 1) + 1 + int(0, 9);
    return {
      x: [int(1, 2), int(16, 70), size, size + int(0, 3)],
      o: int(1, 70),
      k,
      options: { stride: int(1, 2), padding, dilation, activation: activations[int(0, 5)], alpha: 0.1 + r() },
      bias: r() < 0.8,
      residual: r() < 0.5,
    };
  });
}

forEachBackend((name) => {
  if (name === 'gpu') {
    // The layout pass never runs on the GPU; the ops say so rather than fail obscurely.
    it('reports that the GPU has no NCHWc kernel, naming the op', () => {
      const x = kiln.randn([1, 16, 4, 4], { seed: 1 });
      expectThrows(() => toNchwc(x), 'toNchwc', 'no kernel on the gpu');
      x.dispose();
    });
    return;
  }

  it('equals conv2d on random geometries (partial blocks, stride 2, pads, dilation, residual, activations)', async () => {
    let seed = 1;
    for (const g of geometries(24, 7)) {
      const label = JSON.stringify(g);
      const x = T(randND(g.x, seed++));
      const w = T(randND([g.o, g.x[1], g.k, g.k], seed++));
      const bias = g.bias ? T(randND([g.o], seed++)) : null;
      const plain = kiln.conv2d(x, w, g.options);
      const residual = g.residual ? T(randND(plain.shape, seed++)) : null;
      const want = kiln.conv2d(x, w, { ...g.options, bias, residual });
      const got = kiln.tidy(() => {
        const y = conv2dNchwc(toNchwc(x), packNchwcFilters(w), { ...g.options, bias, residual: residual && toNchwc(residual) });
        expect(y.shape, label).toEqual([want.shape[0], Math.ceil(g.o / 16), want.shape[2], want.shape[3], 16]);
        return fromNchwc(y, g.o);
      });
      expect(got.shape, label).toEqual(want.shape);
      assertClose(await read(got), await read(want), TOL, label);
      kiln.dispose([x, w, plain, want, got, ...(bias ? [bias] : []), ...(residual ? [residual] : [])]);
    }
  });

  it('reads a plain NCHW input of at most 16 channels (a stem writing NCHWc) as conv2d does', async () => {
    let seed = 100;
    // [x shape, out channels, kernel, stride, pad]: SqueezeNet's and ResNet-50's stems (smaller), 1 and 16 channels.
    const cases = [[[1, 3, 23, 25], 64, 3, 2, 0], [[2, 3, 19, 19], 40, 7, 2, 3], [[1, 1, 9, 9], 20, 3, 1, 1], [[1, 16, 8, 8], 33, 1, 1, 0]] as const;
    for (const [shape, o, k, stride, pad] of cases) {
      const label = JSON.stringify({ shape, o, k, stride, pad });
      const x = T(randND([...shape], seed++));
      const w = T(randND([o, shape[1], k, k], seed++));
      const bias = T(randND([o], seed++));
      const options = { stride, padding: pad, bias, activation: 'relu' as const };
      const want = kiln.conv2d(x, w, options);
      const got = kiln.tidy(() => fromNchwc(conv2dNchwc(x, packNchwcFilters(w), options), o));
      assertClose(await read(got), await read(want), TOL, label);
      kiln.dispose([x, w, bias, want, got]);
    }
  });

  it('conv2dNchwcConcat equals conv2dConcat (whole-block sets and a partial last one), batches 1 and 3', async () => {
    for (const batch of [1, 3]) {
      const x = T(randND([batch, 24, 9, 9], batch));
      const specs = [
        { o: 32, k: 1, padding: 0, activation: 'relu' as const, bias: true },
        { o: 16, k: 3, padding: 1, activation: 'relu' as const, bias: false },
        { o: 20, k: 3, padding: [1, 1, 1, 1] as [number, number, number, number], activation: undefined, bias: true },
      ];
      const sets = specs.map((s, i) => ({ ...s, weight: T(randND([s.o, 24, s.k, s.k], 10 + i)), bias: s.bias ? T(randND([s.o], 20 + i)) : null }));
      const want = kiln.conv2dConcat(x, sets);
      const got = kiln.tidy(() => {
        const y = conv2dNchwcConcat(toNchwc(x), sets.map((s) => ({ ...s, packed: packNchwcFilters(s.weight) })));
        expect(y.shape).toEqual([batch, 5, 9, 9, 16]);
        return fromNchwc(y, 68);
      });
      assertClose(await read(got), await read(want), TOL, `batch ${batch}`);
      kiln.dispose([x, want, got, ...sets.flatMap((s) => [s.weight, ...(s.bias ? [s.bias] : [])])]);
    }
  });

  it('maxPool2dNchwc equals maxPool2d (stride 2, padding, dilation)', async () => {
    const x = T(randND([2, 35, 11, 9], 4));
    for (const window of [
      { kernel: [3, 3], stride: [2, 2], padding: [0, 0, 0, 0], dilation: [1, 1] },
      { kernel: [3, 2], stride: [2, 1], padding: [2, 2, 0, 1], dilation: [2, 1] },
    ] as const) {
      const want = kiln.maxPool2d(x, [...window.kernel], { stride: [...window.stride], padding: [...window.padding], dilation: [...window.dilation] });
      const got = kiln.tidy(() => fromNchwc(maxPool2dNchwc(toNchwc(x), { kernel: [...window.kernel], stride: [...window.stride], padding: [...window.padding], dilation: [...window.dilation] }), 35));
      assertEqual(await read(got), await read(want), JSON.stringify(window));
      kiln.dispose([want, got]);
    }
    x.dispose();
  });

  it('avgPool2dNchwc equals avgPool2d (stride 2, padding counted or not, the whole plane)', async () => {
    const x = T(randND([2, 35, 11, 9], 5));
    for (const window of [
      { kernel: [3, 3], stride: [2, 2], padding: [0, 0, 0, 0], countIncludePad: false },
      { kernel: [3, 2], stride: [2, 1], padding: [1, 1, 0, 1], countIncludePad: true },
      { kernel: [2, 3], stride: [1, 2], padding: [1, 0, 1, 1], countIncludePad: false },
      { kernel: [11, 9], stride: [1, 1], padding: [0, 0, 0, 0], countIncludePad: false },
    ] as const) {
      const options = { kernel: [...window.kernel] as [number, number], stride: [...window.stride] as [number, number], padding: [...window.padding] as [number, number, number, number], countIncludePad: window.countIncludePad };
      const want = kiln.avgPool2d(x, options.kernel, { stride: options.stride, padding: options.padding, countIncludePad: options.countIncludePad });
      const got = kiln.tidy(() => fromNchwc(avgPool2dNchwc(toNchwc(x), options), 35));
      assertClose(await read(got), await read(want), { atol: 1e-6, rtol: 1e-6 }, JSON.stringify(window));
      kiln.dispose([want, got]);
    }
    x.dispose();
  });

  it('toNchwc and fromNchwc are exact inverses, the padding zero', async () => {
    const x = T(randND([2, 19, 3, 5], 3));
    const xb = toNchwc(x);
    expect(xb.shape).toEqual([2, 2, 3, 5, 16]);
    const padding = kiln.tidy(() => kiln.slice(xb, [0, 1, 0, 0, 3], [2, 1, 3, 5, 13]));
    assertEqual(await read(padding), new Array(2 * 3 * 5 * 13).fill(0));
    const back = fromNchwc(xb, 19);
    assertEqual(await read(back), await read(x));
    kiln.dispose([x, xb, padding, back]);
  });

  it('refuses bad shapes and dtypes and a recorded gradient, naming the op', () => {
    const x = kiln.randn([1, 32, 6, 6], { seed: 1 });
    const w = kiln.randn([20, 32, 3, 3], { seed: 2 });
    const xb = toNchwc(x);
    const packed = packNchwcFilters(w);
    expectThrows(() => conv2dNchwc(x, packed), 'conv2dNchwc', '[1, 32, 6, 6]');
    const colours = kiln.randn([1, 20, 6, 6], { seed: 4 });
    const onePacked = kiln.tidy(() => packNchwcFilters(kiln.randn([20, 16, 3, 3], { seed: 5 })));
    expectThrows(() => conv2dNchwc(colours, packed), 'conv2dNchwc', 'one input block');
    expectThrows(() => conv2dNchwc(colours, onePacked), 'conv2dNchwc', '1 to 16 channels', '[1, 20, 6, 6]');
    kiln.dispose([colours, onePacked]);
    expectThrows(() => conv2dNchwc(xb, w), 'conv2dNchwc', '[20, 32, 3, 3]');
    expectThrows(() => conv2dNchwc(xb, packed, { bias: kiln.zeros([40]) }), 'conv2dNchwc', 'bias', '[40]');
    expectThrows(() => conv2dNchwc(xb, packed, { residual: kiln.zeros([1, 2, 6, 6, 16]) }), 'conv2dNchwc', 'residual', '[1, 2, 4, 4, 16]');
    expectThrows(() => fromNchwc(xb, 40), 'fromNchwc', '40 channels');
    expectThrows(() => toNchwc(xb), 'toNchwc', '[1, 2, 6, 6, 16]');
    expectThrows(() => toNchwc(kiln.zeros([1, 16, 2, 2], 'int32')), 'toNchwc', 'float32');
    expectThrows(() => packNchwcFilters(kiln.zeros([3, 3])), 'packNchwcFilters');
    const trained = kiln.randn([1, 16, 4, 4], { seed: 3 }).setRequiresGrad(true);
    expectThrows(() => toNchwc(trained), 'toNchwc', 'noGrad');
    const inNoGrad = kiln.noGrad(() => toNchwc(trained));
    expect(inNoGrad.shape).toEqual([1, 1, 4, 4, 16]);
    kiln.dispose([x, w, xb, packed, trained, inNoGrad]);
  });
});
