/**
 * Load-time Conv + BatchNormalization + activation fusion (ts/onnx/fusion/conv.ts): an imported
 * CNN block runs as one conv2d per pattern with the normalization folded into its filters (once)
 * and the activation fused into the kernel, with onnxruntime's outputs; when gradients could
 * reach the folded parameters the original nodes run, and after fine-tuning the next inference
 * folds the new weights.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import * as kiln from '../../ts/index.js';
import { backend } from '../../ts/engine.js';
import { forEachBackend } from '../backends.js';
import { expectClose, modelBytes, onnxruntime } from './graphs.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-onnx-fusion-conv-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ints = (name: string, v: number[]) => ({ name, type: 7, ints: v });

/**
 * x [n, 3, 9, 9] -> Conv 3x3 (bias) -> BatchNormalization -> Relu -> Conv 3x3 stride 2 (no
 * bias) -> LeakyRelu 0.2 -> Conv 1x1 -> BatchNormalization -> y: a ResNet-style block, a
 * SqueezeNet-style conv + activation, and a conv + normalization with no activation.
 */
function cnnBlock(): string {
  const path = join(dir, 'block.onnx');
  const positive = (shape: number[], seed: number) => kiln.randu(shape, { seed, low: 0.5, high: 1.5 });
  writeFileSync(path, modelBytes({
    nodes: [
      { opType: 'Conv', input: ['x', 'w1', 'b1'], output: ['c1'], name: 'conv1', attribute: [ints('pads', [1, 1, 1, 1])] },
      { opType: 'BatchNormalization', input: ['c1', 'g1', 'beta1', 'mean1', 'var1'], output: ['n1'], name: 'bn1', attribute: [{ name: 'epsilon', type: 1, f: 1e-3 }] },
      { opType: 'Relu', input: ['n1'], output: ['r1'], name: 'relu1' },
      { opType: 'Conv', input: ['r1', 'w2'], output: ['c2'], name: 'conv2', attribute: [ints('strides', [2, 2])] },
      { opType: 'LeakyRelu', input: ['c2'], output: ['r2'], name: 'leaky2', attribute: [{ name: 'alpha', type: 1, f: 0.2 }] },
      { opType: 'Conv', input: ['r2', 'w3'], output: ['c3'], name: 'conv3' },
      { opType: 'BatchNormalization', input: ['c3', 'g3', 'beta3', 'mean3', 'var3'], output: ['y'], name: 'bn3' },
    ],
    inputs: [['x', ['n', 3, 9, 9]]],
    outputs: ['y'],
    initializers: {
      w1: kiln.randn([6, 3, 3, 3], { seed: 1 }).mul(0.3),
      b1: kiln.randn([6], { seed: 2 }),
      g1: positive([6], 3),
      beta1: kiln.randn([6], { seed: 4 }),
      mean1: kiln.randn([6], { seed: 5 }),
      var1: positive([6], 6),
      w2: kiln.randn([5, 6, 3, 3], { seed: 7 }).mul(0.2),
      w3: kiln.randn([4, 5, 1, 1], { seed: 8 }),
      g3: positive([4], 9),
      beta3: kiln.randn([4], { seed: 10 }),
      mean3: kiln.randn([4], { seed: 11 }),
      var3: positive([4], 12),
    },
  }));
  return path;
}

forEachBackend(() => {
  describe('onnx.load Conv fusion', () => {
    it('runs Conv+BatchNormalization+Relu, Conv+LeakyRelu and Conv+BatchNormalization as one conv2d each, as onnxruntime does', () => {
      const path = cnnBlock();
      const imported = kiln.onnx.load(path);
      expect(imported.fusions).toEqual([
        { pattern: 'Conv+BatchNormalization+Relu', nodes: ['conv1', 'bn1', 'relu1'] },
        { pattern: 'Conv+LeakyRelu', nodes: ['conv2', 'leaky2'] },
        { pattern: 'Conv+BatchNormalization', nodes: ['conv3', 'bn3'] },
      ]);
      const x = kiln.randn([2, 3, 9, 9], { seed: 13 });
      const want = onnxruntime(path, { x }).y;
      const impl = backend().impl;
      for (const run of ['folds', 'reuses the fold']) {
        const [conv, norm, unary, binary] = [vi.spyOn(impl, 'conv2d'), vi.spyOn(impl, 'batchNorm'), vi.spyOn(impl, 'unary'), vi.spyOn(impl, 'binary')];
        const got = kiln.noGrad(() => kiln.tidy(() => imported.forward(x)));
        // Three convolutions, the activations passed to them, no normalization or activation op.
        expect(conv.mock.calls.map((c) => c.slice(4)), run).toEqual([[0, 'relu'], [0.2, 'leakyRelu'], [0, undefined]].map(([a, name]) => [expect.closeTo(a as number, 6), name]));
        expect(norm, run).not.toHaveBeenCalled();
        expect(unary.mock.calls.filter(([code]) => code === backend().codes.unary.relu || code === backend().codes.unary.leakyRelu), run).toEqual([]);
        // The fold (mul, add, ...) runs on the first inference only.
        if (run === 'reuses the fold') expect(binary, run).not.toHaveBeenCalled();
        else expect(binary, run).toHaveBeenCalled();
        vi.restoreAllMocks();
        expectClose(got, want, 1e-4);
        got.dispose();
      }
      x.dispose();
      imported.dispose();
    });

    it('runs the original nodes while gradients could reach the folded parameters, and infers with fine-tuned weights after fit', async () => {
      const imported = kiln.onnx.load(cnnBlock());
      const x = kiln.randn([4, 3, 9, 9], { seed: 14 });
      const impl = backend().impl;
      // Recording gradients in eval mode (frozen statistics): BatchNormalization runs, and the
      // conv1 filters and bn1's scale get gradients.
      const norm = vi.spyOn(impl, 'batchNorm');
      const loss = imported.forward(x).square().mean();
      expect(norm).toHaveBeenCalledTimes(2);
      vi.restoreAllMocks();
      loss.backward();
      const [w1, g1] = [imported.stateDict().w1, imported.stateDict().g1];
      for (const p of [w1, g1]) {
        const g = p.grad;
        expect(g).not.toBeNull();
        g!.dispose();
      }
      loss.dispose();
      imported.zeroGrad();

      const inferred = () => kiln.noGrad(() => kiln.tidy(() => imported.forward(x).dataSync().slice()));
      const unfused = () => kiln.tidy(() => imported.forward(x).dataSync().slice());
      const before = inferred();
      // Fine-tune the weights (fit switches to training mode and back).
      const target = kiln.zeros([4, 4, 4, 4]);
      const optimizer = new kiln.optim.SGD(imported.parameters(), { lr: 0.05 });
      await kiln.fit(imported, { x, y: target }, { epochs: 2, batchSize: 4, optimizer, loss: (o, y) => o.sub(y).square().mean(), verbose: 0 });
      optimizer.dispose();
      imported.eval();
      const after = inferred();
      const reference = unfused();
      // The weights moved, and the fused path follows them (a stale fold would give `before`).
      expect(Math.max(...after.map((v, i) => Math.abs(v - before[i])))).toBeGreaterThan(1e-3);
      after.forEach((v, i) => expect(Math.abs(v - reference[i])).toBeLessThan(1e-4 * (1 + Math.abs(reference[i]))));
      kiln.dispose([x, target]);
      imported.dispose();
    });
  });
});
