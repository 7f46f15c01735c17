/**
 * Quantized convolutions on every backend: conv2dQ8 / conv2dQ4 against conv2d on the dequantized
 * filters (stride, padding incl. 'same', dilation, groups, odd rows, blocks that do not divide a
 * row, more filters than one tile), errors, gradient refusal, and the working-memory claim: a
 * quantized conv (and QuantizedConv2d) never holds its float32 weight, even per call.
 */
import { expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { nn, type Tensor } from '../../ts/index.js';
import type { Conv2dOptions } from '../../ts/ops/conv.js';
import { forEachBackend, QUANTIZED_ON_CPU_ONLY } from '../backends.js';
import { assertClose, expectEveryTestToFreeItsTensors, expectThrows, read } from '../helpers.js';

interface Case {
  x: [number, number, number, number];
  out: number;
  kernel: [number, number];
  options: Conv2dOptions;
  block: number;
}

const CASES: Case[] = [
  { x: [2, 3, 9, 9], out: 5, kernel: [3, 3], options: { padding: 'same' }, block: 32 },
  { x: [1, 4, 10, 7], out: 6, kernel: [3, 3], options: { stride: 2, padding: [0, 1, 1, 0] }, block: 5 },
  { x: [3, 6, 11, 8], out: 4, kernel: [3, 2], options: { dilation: 2, padding: [2, 1], groups: 2 }, block: 3 },
  { x: [2, 8, 12, 12], out: 8, kernel: [5, 5], options: { stride: [1, 2], padding: 'same', groups: 8 }, block: 8 },
  { x: [2, 7, 6, 5], out: 9, kernel: [1, 1], options: {}, block: 4 },
  { x: [1, 10, 6, 6], out: 150, kernel: [3, 3], options: { padding: 1, groups: 2 }, block: 32 },
];

/** Peak bytes above what is live before `f` runs, its results freed. */
function peakOf(f: () => Tensor): number {
  const base = kiln.memory().numBytes;
  kiln.resetPeakMemory();
  kiln.tidy(() => {
    f();
  });
  return kiln.peakMemory().numBytes - base;
}

forEachBackend(() => {
  expectEveryTestToFreeItsTensors();

  it('conv2dQ8 / conv2dQ4 equal conv2d on the dequantized filters (stride, padding, dilation, groups, blocks)', async () => {
    for (const [i, c] of CASES.entries()) {
      const groups = c.options.groups ?? 1;
      const patch = (c.x[1] / groups) * c.kernel[0] * c.kernel[1];
      const shape4 = [c.out, c.x[1] / groups, ...c.kernel];
      const x = kiln.randn(c.x, { seed: 10 * i + 1 });
      const w = kiln.randn([c.out, patch], { seed: 10 * i + 2 });
      const bias = kiln.randn([c.out], { seed: 10 * i + 3 });
      const label = `case ${i} x [${c.x}] out ${c.out} kernel ${c.kernel} ${JSON.stringify(c.options)}`;
      const q8 = kiln.quantizeInt8(w);
      const q4 = kiln.quantizeInt4(w, c.block);
      const [d8, d4] = kiln.tidy(() => [
        kiln.dequantizeInt8(q8.q, q8.scales).reshape(shape4),
        kiln.dequantizeInt4(q4.q, q4.scales, patch, c.block).reshape(shape4),
      ]);
      const results: Array<[string, Tensor, Tensor]> = [
        ['int8', kiln.conv2dQ8(x, q8.q, q8.scales, c.kernel, { ...c.options, bias }), kiln.conv2d(x, d8, { ...c.options, bias })],
        ['int8 no bias', kiln.conv2dQ8(x, q8.q, q8.scales, c.kernel, c.options), kiln.conv2d(x, d8, c.options)],
        ['int4', kiln.conv2dQ4(x, q4.q, q4.scales, c.kernel, { ...c.options, bias, block: c.block }), kiln.conv2d(x, d4, { ...c.options, bias })],
      ];
      for (const [name, got, want] of results) {
        expect(got.shape, `${name} ${label}`).toEqual(want.shape);
        assertClose(await read(got), await read(want), { atol: 1e-4, rtol: 1e-4 }, `${name} ${label}`);
      }
      kiln.dispose([x, w, bias, q8.q, q8.scales, q4.q, q4.scales, d8, d4, ...results.flatMap(([, a, b]) => [a, b])]);
    }
  });

  it('errors name the op, the shapes and dtypes; gradients are refused, not dropped', () => {
    const x = kiln.randn([1, 4, 6, 6], { seed: 1 });
    const w = kiln.randn([5, 36], { seed: 2 });
    const { q, scales } = kiln.quantizeInt8(w);
    const p4 = kiln.quantizeInt4(w, 32);
    expectThrows(() => kiln.conv2dQ8(x, q, scales, 2), 'conv2dQ8', '[5, 36]', '[1, 4, 6, 6]', '2x2');
    expectThrows(() => kiln.conv2dQ8(x, w, scales, 3), 'conv2dQ8', 'int8', 'float32 [5, 36]');
    const shortBias = kiln.zeros([4]);
    expectThrows(() => kiln.conv2dQ8(x, q, scales, 3, { bias: shortBias }), 'conv2dQ8', 'bias must be float32 [5]');
    expectThrows(() => kiln.conv2dQ8(x, q, scales, 3, { groups: 3 }), 'conv2dQ8', 'groups 3');
    expectThrows(() => kiln.conv2dQ8(x, q, scales, 3, { stride: 0 }), 'conv2dQ8', 'stride');
    expectThrows(() => kiln.conv2dQ8(x, q, scales, 1.5), 'conv2dQ8', 'kernel');
    expectThrows(() => kiln.conv2dQ4(x, p4.q, p4.scales, 3, { block: 8 }), 'conv2dQ4', 'block 8');
    expectThrows(() => kiln.conv2dQ4(x, p4.q, p4.scales, 3, { block: 0 }), 'conv2dQ4', 'block');
    const tracked = x.detach().setRequiresGrad();
    expectThrows(() => kiln.conv2dQ8(tracked, q, scales, 3), 'conv2dQ8', 'inference-only', 'noGrad');
    const y = kiln.noGrad(() => kiln.conv2dQ8(tracked, q, scales, 3));
    expect(y.requiresGrad).toBe(false);
    kiln.dispose([x, w, q, scales, p4.q, p4.scales, tracked, y, shortBias]);
  });

  it('working memory stays far below the float32 weight: the filters are never expanded whole', () => {
    // 512 filters of 256 channels x 3x3 on an 8x8 image: the float32 weight (4.7 MB) dwarfs the
    // input (64 KB), the output (128 KB) and the im2col band (590 KB).
    const conv = new nn.Conv2d(256, 512, 3, { padding: 'same', seed: 5 });
    const weightBytes = 512 * 256 * 9 * 4;
    const x = kiln.randn([1, 256, 8, 8], { seed: 6 });
    const rows = kiln.noGrad(() => conv.weight.reshape([512, 256 * 9]));
    const q8 = kiln.quantizeInt8(rows);
    // The measurement sees a dequantized weight when there is one (dequantize, then conv2d).
    const whole = peakOf(() => kiln.conv2d(x, kiln.dequantizeInt8(q8.q, q8.scales).reshape([512, 256, 3, 3]), { padding: 'same' }));
    expect(whole, 'dequantize-then-conv2d holds the float32 weight').toBeGreaterThanOrEqual(weightBytes);
    const op = peakOf(() => kiln.conv2dQ8(x, q8.q, q8.scales, 3, { padding: 'same' }));
    expect(op, `conv2dQ8 peak ${op} B, float32 weight ${weightBytes} B`).toBeLessThan(weightBytes / 2);
    for (const bits of [8, 4] as const) {
      const layer = new nn.QuantizedConv2d(conv, { bits });
      const peak = kiln.noGrad(() => peakOf(() => layer.forward(x)));
      expect(peak, `QuantizedConv2d int${bits} peak ${peak} B, float32 weight ${weightBytes} B`).toBeLessThan(weightBytes / 2);
      layer.dispose();
    }
    kiln.dispose([x, rows, q8.q, q8.scales]);
    conv.dispose();
  });
}, { except: { gpu: QUANTIZED_ON_CPU_ONLY } });
