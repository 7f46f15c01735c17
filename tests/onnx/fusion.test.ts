/**
 * Load-time fusion (ts/onnx/fusion/): exported attention and GELU patterns run as Kiln's fused
 * attention and gelu kernels, with onnxruntime's outputs; patterns whose fast path does not apply
 * (a per-query mask other than causal, other constants, training mode) run their original nodes,
 * still matching onnxruntime, and in training mode gradients reach every parameter of the pattern.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import * as kiln from '../../ts/index.js';
import { nn, type Tensor } from '../../ts/index.js';
import { backend } from '../../ts/engine.js';
import { forEachBackend } from '../backends.js';
import { Decoder, Encoder, expectClose, modelBytes, onnxruntime } from './graphs.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-onnx-fusion-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Exports `model` on `inputs` (graph inputs input_0, ...) and returns the file's path. */
function exported(name: string, model: nn.Module<any, any>, inputs: Tensor[]): string {
  const path = join(dir, `${name}.onnx`);
  model.eval();
  kiln.onnx.save(model, inputs, path);
  return path;
}

/** x · h · (1 + Erf(x / √2)), torch's spelling of GELU, with `h` (0.5 is GELU) as an initializer. */
function torchGelu(h: number): Uint8Array {
  return modelBytes({
    nodes: [
      { opType: 'Div', input: ['x', 'sqrt2'], output: ['s'], name: 'div' },
      { opType: 'Erf', input: ['s'], output: ['e'], name: 'erf' },
      { opType: 'Add', input: ['one', 'e'], output: ['p'], name: 'add' },
      { opType: 'Mul', input: ['x', 'p'], output: ['m'], name: 'mul' },
      { opType: 'Mul', input: ['m', 'half'], output: ['y'], name: 'half' },
    ],
    inputs: [['x', ['n', 5]]],
    outputs: ['y'],
    initializers: { sqrt2: kiln.tensor([Math.SQRT2], []), one: kiln.tensor([1], []), half: kiln.tensor([h], []) },
  });
}

forEachBackend(() => {
  describe('onnx.load fusion', () => {
    it('runs an exported Transformer encoder layer on fused attention and GELU, as onnxruntime does', () => {
      const model = new Encoder(5);
      const x = kiln.randn([3, 6, 16], { seed: 7 });
      // Sample 0 sees every key, sample 1 the first four, sample 2 none (ONNX's -1e9 then
      // averages the values evenly, and so must the fused kernel).
      const padding = kiln.tensor([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1], [3, 6]).cast('bool');
      const path = exported('encoder', model, [x, padding]);
      const imported = kiln.onnx.load(path);
      // The feed-forward's first Linear and its GELU are one product with the GELU in its epilogue.
      expect([...new Set(imported.fusions.map((f) => f.pattern))].sort()).toEqual(['Attention', 'Linear', 'LinearGelu', 'LinearGroup']);
      expect(imported.fusions.find((f) => f.pattern === 'Attention')!.nodes.length).toBeGreaterThanOrEqual(5);
      const reference = onnxruntime(path, { input_0: x, input_1: padding });
      const kernel = vi.spyOn(backend().impl, 'attention');
      const linear = vi.spyOn(backend().impl, 'linear');
      const got = kiln.tidy(() => imported.forward(x, padding));
      expect(kernel).toHaveBeenCalledTimes(1);
      expect(linear.mock.calls.filter((call) => call[4] === 'gelu').length).toBe(1);
      kernel.mockRestore();
      linear.mockRestore();
      expectClose(got, reference.output_0);
      kiln.dispose([got, x, padding]);
      imported.dispose();
      model.dispose();
    });

    it('runs an exported Transformer decoder layer (causal self-attention, cross-attention) on the kernel, as onnxruntime does', () => {
      const model = new Decoder(6);
      const x = kiln.randn([2, 5, 16], { seed: 8 });
      const memory = kiln.randn([2, 7, 16], { seed: 9 });
      const path = exported('decoder', model, [x, memory]);
      const imported = kiln.onnx.load(path);
      // Self-attention (causal), cross-attention and the feed-forward GELU are all recognised.
      expect(imported.fusions.filter((f) => f.pattern === 'Attention').length).toBe(2);
      const reference = onnxruntime(path, { input_0: x, input_1: memory });
      // The causal self-attention (its exported -1e9 mask read as the kernel's causal option) and
      // the cross-attention (no mask) both reach the kernel.
      const kernel = vi.spyOn(backend().impl, 'attention');
      const got = kiln.tidy(() => imported.forward(x, memory));
      expect(kernel).toHaveBeenCalledTimes(2);
      kernel.mockRestore();
      expectClose(got, reference.output_0);
      kiln.dispose([got, x, memory]);
      imported.dispose();
      model.dispose();
    });

    it("recognises torch's GELU spelling, and runs the original nodes when a constant differs", () => {
      const x = kiln.randn([4, 5], { seed: 10 });
      for (const h of [0.5, 0.4]) {
        const path = join(dir, `gelu-${h}.onnx`);
        writeFileSync(path, torchGelu(h));
        const imported = kiln.onnx.load(path);
        expect(imported.fusions).toEqual([{ pattern: 'Gelu', nodes: ['div', 'erf', 'add', 'mul', 'half'] }]);
        const unary = vi.spyOn(backend().impl, 'unary');
        const got = kiln.tidy(() => imported.forward(x));
        // The gelu kernel runs for GELU's 0.5 only; 0.4 composes Erf from other unary ops.
        const geluCalls = unary.mock.calls.filter(([code]) => code === backend().codes.unary.gelu).length;
        expect(geluCalls).toBe(h === 0.5 ? 1 : 0);
        unary.mockRestore();
        expectClose(got, onnxruntime(path, { x }).y, 1e-5);
        got.dispose();
        imported.dispose();
      }
      x.dispose();
    });

    it('fuses the BERT-style spelling (Div by √D, an additive mask): key masks and causal masks on the kernel, others on the nodes', () => {
      const [b, h, t, d] = [2, 3, 5, 4];
      const path = join(dir, 'bert-attention.onnx');
      writeFileSync(path, modelBytes({
        nodes: [
          { opType: 'Transpose', input: ['k'], output: ['kt'], name: 'kt', attribute: [{ name: 'perm', type: 7, ints: [0, 1, 3, 2] }] },
          { opType: 'MatMul', input: ['q', 'kt'], output: ['s'], name: 'scores' },
          { opType: 'Div', input: ['s', 'root'], output: ['sd'], name: 'scale' },
          { opType: 'Add', input: ['sd', 'mask'], output: ['sm'], name: 'mask' },
          { opType: 'Softmax', input: ['sm'], output: ['w'], name: 'softmax', attribute: [{ name: 'axis', type: 2, i: -1 }] },
          { opType: 'MatMul', input: ['w', 'v'], output: ['y'], name: 'context' },
        ],
        inputs: [['q', [b, h, t, d]], ['k', [b, h, t, d]], ['v', [b, h, t, d]], ['mask', ['mb', 'mh', 'mq', 'mk']]],
        outputs: ['y'],
        initializers: { root: kiln.tensor([Math.sqrt(d)], []) },
      }));
      const [q, k, v] = [12, 13, 14].map((seed) => kiln.randn([b, h, t, d], { seed }));
      const grid = (f: (i: number, j: number) => number): number[] => Array.from({ length: t * t }, (_, n) => f(Math.floor(n / t), n % t));
      const masks: Array<[string, Tensor, number]> = [
        ['key padding', kiln.tensor([0, 0, 0, -10000, -10000, 0, 0, 0, 0, 0], [b, 1, 1, t]), 1],
        ['causal', kiln.tensor(grid((i, j) => (j <= i ? 0 : -1e9)), [1, 1, t, t]), 1],
        ['anti-causal', kiln.tensor(grid((i, j) => (j >= i ? 0 : -1e9)), [1, 1, t, t]), 0],
      ];
      const imported = kiln.onnx.load(path);
      expect(imported.fusions).toEqual([{ pattern: 'Attention', nodes: ['kt', 'scores', 'scale', 'mask', 'softmax', 'context'] }]);
      for (const [what, mask, kernelCalls] of masks) {
        const kernel = vi.spyOn(backend().impl, 'attention');
        const got = kiln.tidy(() => imported.forward(q, k, v, mask));
        expect(kernel, what).toHaveBeenCalledTimes(kernelCalls);
        kernel.mockRestore();
        expectClose(got, onnxruntime(path, { q, k, v, mask }).y, 1e-5);
        kiln.dispose([got, mask]);
      }
      kiln.dispose([q, k, v]);
      imported.dispose();
    });

    it('trains through the original nodes: gradients reach the scalar initializers of the patterns', () => {
      const model = new Encoder(5);
      const x = kiln.randn([2, 6, 16], { seed: 11 });
      const padding = kiln.zeros([2, 6]).cast('bool');
      const imported = kiln.onnx.load(exported('encoder-train', model, [x, padding]));
      imported.train();
      const kernel = vi.spyOn(backend().impl, 'attention');
      const loss = imported.forward(x, padding).square().mean();
      loss.backward();
      expect(kernel).not.toHaveBeenCalled();
      kernel.mockRestore();
      // The attention scale, GELU's 0.5, √2 and 1 are one-element float initializers, so parameters.
      const scalars = imported.parameters().filter((p) => p.size === 1);
      expect(scalars.length).toBeGreaterThanOrEqual(4);
      for (const p of scalars) expect(p.grad).not.toBeNull();
      kiln.dispose([loss, x, padding]);
      imported.dispose();
      model.dispose();
    });
  });
});
