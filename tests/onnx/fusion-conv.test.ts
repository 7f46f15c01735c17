/**
 * Load-time Conv + BatchNormalization + residual Add + activation fusion
 * (ts/onnx/fusion/conv.ts): an imported CNN block runs as one conv2d per pattern with the
 * normalization folded into its filters (once), the residual added and the activation fused into
 * the kernel, with onnxruntime's outputs; when gradients could reach the folded parameters the
 * original nodes run, and after fine-tuning the next inference folds the new weights.
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

/**
 * x [n, 8, 6, 6] -> a ResNet bottleneck-style block with a downsampling branch: Conv 3x3 ->
 * BatchNormalization -> Relu -> Conv 1x1 -> BatchNormalization -> Sum(., Conv 1x1 (bias) ->
 * BatchNormalization of x) -> Relu; then Conv 3x3 (bias) -> Add(the block's output) -> y1, and
 * Conv 1x1 -> Add(a [1, 12, 1, 1] constant: broadcast, not a residual) -> Relu -> y2.
 */
function residualBlock(): string {
  const path = join(dir, 'residual.onnx');
  const positive = (shape: number[], seed: number) => kiln.randu(shape, { seed, low: 0.5, high: 1.5 });
  const bn = (name: string, input: string, output: string) => ({ opType: 'BatchNormalization', input: [input, `g${name}`, `beta${name}`, `mean${name}`, `var${name}`], output: [output], name: `bn${name}` });
  const bnParams = (name: string, channels: number, seed: number) => ({
    [`g${name}`]: positive([channels], seed),
    [`beta${name}`]: kiln.randn([channels], { seed: seed + 1 }),
    [`mean${name}`]: kiln.randn([channels], { seed: seed + 2 }).mul(0.1),
    [`var${name}`]: positive([channels], seed + 3),
  });
  writeFileSync(path, modelBytes({
    nodes: [
      { opType: 'Conv', input: ['x', 'wA'], output: ['cA'], name: 'convA', attribute: [ints('pads', [1, 1, 1, 1])] },
      bn('A', 'cA', 'nA'),
      { opType: 'Relu', input: ['nA'], output: ['rA'], name: 'reluA' },
      { opType: 'Conv', input: ['rA', 'wB'], output: ['cB'], name: 'convB' },
      bn('B', 'cB', 'nB'),
      { opType: 'Conv', input: ['x', 'wD', 'bD'], output: ['cD'], name: 'convD' },
      bn('D', 'cD', 'nD'),
      { opType: 'Sum', input: ['nB', 'nD'], output: ['s'], name: 'sum' },
      { opType: 'Relu', input: ['s'], output: ['block'], name: 'reluS' },
      { opType: 'Conv', input: ['block', 'wC', 'bC'], output: ['cC'], name: 'convC', attribute: [ints('pads', [1, 1, 1, 1])] },
      { opType: 'Add', input: ['block', 'cC'], output: ['y1'], name: 'addC' },
      { opType: 'Conv', input: ['y1', 'wE'], output: ['cE'], name: 'convE' },
      { opType: 'Add', input: ['cE', 'shift'], output: ['aE'], name: 'addE' },
      { opType: 'Relu', input: ['aE'], output: ['y2'], name: 'reluE' },
    ],
    inputs: [['x', ['n', 8, 6, 6]]],
    outputs: ['y1', 'y2'],
    initializers: {
      wA: kiln.randn([8, 8, 3, 3], { seed: 20 }).mul(0.2),
      wB: kiln.randn([12, 8, 1, 1], { seed: 21 }).mul(0.3),
      wD: kiln.randn([12, 8, 1, 1], { seed: 22 }).mul(0.3),
      bD: kiln.randn([12], { seed: 23 }),
      wC: kiln.randn([12, 12, 3, 3], { seed: 24 }).mul(0.1),
      bC: kiln.randn([12], { seed: 25 }),
      wE: kiln.randn([12, 12, 1, 1], { seed: 26 }).mul(0.3),
      shift: kiln.randn([1, 12, 1, 1], { seed: 27 }),
      ...bnParams('A', 8, 30),
      ...bnParams('B', 12, 40),
      ...bnParams('D', 12, 50),
    },
  }));
  return path;
}

/**
 * x [n, 8, 9, 9] -> a SqueezeNet fire module: Conv 1x1 -> Relu (squeeze), then Conv 1x1 -> Relu
 * and Conv 3x3 (padding 1) -> Relu of the squeeze, Concat on channels -> y.
 */
function fireModule(): string {
  const path = join(dir, 'fire.onnx');
  writeFileSync(path, modelBytes({
    nodes: [
      { opType: 'Conv', input: ['x', 'wS', 'bS'], output: ['cS'], name: 'squeeze' },
      { opType: 'Relu', input: ['cS'], output: ['s'], name: 'reluS' },
      { opType: 'Conv', input: ['s', 'w1', 'b1'], output: ['c1'], name: 'expand1x1' },
      { opType: 'Relu', input: ['c1'], output: ['e1'], name: 'relu1' },
      { opType: 'Conv', input: ['s', 'w3', 'b3'], output: ['c3'], name: 'expand3x3', attribute: [ints('pads', [1, 1, 1, 1])] },
      { opType: 'Relu', input: ['c3'], output: ['e3'], name: 'relu3' },
      { opType: 'Concat', input: ['e1', 'e3'], output: ['y'], name: 'concat', attribute: [{ name: 'axis', type: 2, i: 1 }] },
    ],
    inputs: [['x', ['n', 8, 9, 9]]],
    outputs: ['y'],
    initializers: {
      wS: kiln.randn([16, 8, 1, 1], { seed: 70 }).mul(0.3),
      bS: kiln.randn([16], { seed: 71 }),
      w1: kiln.randn([12, 16, 1, 1], { seed: 72 }).mul(0.3),
      b1: kiln.randn([12], { seed: 73 }),
      w3: kiln.randn([20, 16, 3, 3], { seed: 74 }).mul(0.1),
      b3: kiln.randn([20], { seed: 75 }),
    },
  }));
  return path;
}

forEachBackend(() => {
  describe('onnx.load Conv fusion', () => {
    it('runs a fire module\'s two expands and their Concat as one conv2dConcat, as onnxruntime does', () => {
      const path = fireModule();
      const imported = kiln.onnx.load(path);
      expect(imported.fusions).toEqual([
        { pattern: 'Conv+Relu', nodes: ['squeeze', 'reluS'] },
        { pattern: 'ConvConcat', nodes: ['expand1x1', 'relu1', 'expand3x3', 'relu3', 'concat'] },
      ]);
      for (const n of [1, 3]) {
        const x = kiln.randn([n, 8, 9, 9], { seed: 80 + n });
        const want = onnxruntime(path, { x }).y;
        const impl = backend().impl;
        const [fused, concat] = [vi.spyOn(impl, 'conv2dConcat'), vi.spyOn(impl, 'concat')];
        const got = kiln.noGrad(() => kiln.tidy(() => imported.forward(x)));
        expect(fused, `batch ${n}`).toHaveBeenCalledTimes(1);
        expect(concat, `batch ${n}`).not.toHaveBeenCalled();
        vi.restoreAllMocks();
        expectClose(got, want, 1e-4);
        kiln.dispose([x, got]);
      }
      imported.dispose();
    });

    it('runs a residual block\'s Conv+BatchNormalization+Sum+Relu and a Conv+Add as one conv2d each, as onnxruntime does', () => {
      const path = residualBlock();
      const imported = kiln.onnx.load(path);
      const byFirstNode = (a: { nodes: string[] }, b: { nodes: string[] }) => a.nodes[0].localeCompare(b.nodes[0]);
      expect([...imported.fusions].sort(byFirstNode)).toEqual([
        { pattern: 'Conv+BatchNormalization+Relu', nodes: ['convA', 'bnA', 'reluA'] },
        // The Sum's first reader in graph order takes it; the downsampling branch keeps its fold.
        { pattern: 'Conv+BatchNormalization+Sum+Relu', nodes: ['convB', 'bnB', 'sum', 'reluS'] },
        { pattern: 'Conv+Add', nodes: ['convC', 'addC'] },
        { pattern: 'Conv+BatchNormalization', nodes: ['convD', 'bnD'] },
        // Matched at load; its addend broadcasts, so at run time the original nodes run.
        { pattern: 'Conv+Add+Relu', nodes: ['convE', 'addE', 'reluE'] },
      ]);
      for (const n of [1, 3]) {
        const x = kiln.randn([n, 8, 6, 6], { seed: 60 + n });
        const want = onnxruntime(path, { x });
        const impl = backend().impl;
        const [conv, binary] = [vi.spyOn(impl, 'conv2d'), vi.spyOn(impl, 'binary')];
        const { y1, y2 } = kiln.noGrad(() => imported.run({ x }));
        // Five convolutions; the fused ones got a residual handle (argument 3), and only the
        // broadcast Add ran as its own op (the first run also folds: mul and add there).
        const residuals = conv.mock.calls.map((c) => (c[3] as number) >= 0);
        expect(residuals.filter(Boolean).length, `batch ${n}`).toBe(2);
        expect(residuals.length, `batch ${n}`).toBe(5);
        if (n === 3) expect(binary, `batch ${n}`).toHaveBeenCalledTimes(1);
        vi.restoreAllMocks();
        expectClose(y1, want.y1, 1e-4);
        expectClose(y2, want.y2, 1e-4);
        kiln.dispose([x, y1, y2]);
      }
      imported.dispose();
    });


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
        expect(conv.mock.calls.map((c) => c.slice(5)), run).toEqual([[0, 'relu'], [0.2, 'leakyRelu'], [0, undefined]].map(([a, name]) => [expect.closeTo(a as number, 6), name]));
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

    it('folds again after a weight or a statistic is written in place in eval mode (kiln.assign, a device update), with no train() or loadStateDict between', () => {
      const imported = kiln.onnx.load(cnnBlock());
      const x = kiln.randn([2, 3, 9, 9], { seed: 15 });
      const inferred = () => kiln.noGrad(() => kiln.tidy(() => imported.forward(x).dataSync().slice()));
      // Gradients recorded for the parameters: the original nodes run, nothing folded.
      const unfused = () => kiln.tidy(() => imported.forward(x).dataSync().slice());
      const before = inferred();
      const { w1, var3 } = imported.stateDict();
      kiln.noGrad(() => kiln.tidy(() => {
        kiln.assign(w1, w1.mul(-1));
        kiln.assign(var3, var3.mul(4));
      }));
      const after = inferred();
      const reference = unfused();
      expect(Math.max(...after.map((v, i) => Math.abs(v - before[i])))).toBeGreaterThan(1e-3);
      after.forEach((v, i) => expect(Math.abs(v - reference[i])).toBeLessThan(1e-4 * (1 + Math.abs(reference[i]))));
      // A run with no write since keeps the fold: the fused convolutions alone, no folding
      // arithmetic (the fold's mul and add are the graph's only binary ops in inference).
      const binary = vi.spyOn(backend().impl, 'binary');
      expect(inferred()).toEqual(after);
      expect(binary).not.toHaveBeenCalled();
      vi.restoreAllMocks();
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
