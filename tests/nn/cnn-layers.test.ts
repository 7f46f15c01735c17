/**
 * The CNN layers that are not convolutions: BatchNorm2d (against the same computation written
 * from primitive ops, and against PyTorch's formulas computed by hand in float64), the pooling
 * modules, GlobalAvgPool2d and AdaptiveAvgPool2d, and a save -> load round trip of a model
 * built from them.
 *   BatchNorm2d, train: y = (x − μ)/√(σ² + eps)·γ + β with μ, σ² (biased) per channel over (N, H, W);
 *     running_mean ← (1 − m)·running_mean + m·μ, running_var ← (1 − m)·running_var + m·σ²·n/(n − 1)
 *   eval: the running statistics instead of μ, σ².
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import type { Tensor } from '../../ts/index.js';
import * as nn from '../../ts/nn/index.js';
import { forEachBackend } from '../backends.js';
import { assertClose, expectThrows, randND, read, T, expectEveryTestToFreeItsTensors } from '../helpers.js';
import type { ND } from '../reference.js';
import { gradCheck } from './gradcheck.js';

/** Per-channel mean and biased variance of an NCHW array, in float64. */
function channelStats(x: ND): { mean: number[]; variance: number[]; count: number } {
  const [n, c, h, w] = x.shape;
  const values = (ch: number) => {
    const out: number[] = [];
    for (let b = 0; b < n; b++) for (let i = 0; i < h * w; i++) out.push(x.data[(b * c + ch) * h * w + i]);
    return out;
  };
  const mean = Array.from({ length: c }, (_, ch) => values(ch).reduce((a, v) => a + v, 0) / (n * h * w));
  const variance = Array.from({ length: c }, (_, ch) => values(ch).reduce((a, v) => a + (v - mean[ch]) ** 2, 0) / (n * h * w));
  return { mean, variance, count: n * h * w };
}

/** (x − mean)/√(var + eps)·γ + β per channel of an NCHW array, in float64. */
function normalizeND(x: ND, mean: number[], variance: number[], gamma: number[], beta: number[], eps = 1e-5): number[] {
  const [, c, h, w] = x.shape;
  return x.data.map((v, i) => {
    const ch = Math.floor(i / (h * w)) % c;
    return ((v - mean[ch]) / Math.sqrt(variance[ch] + eps)) * gamma[ch] + beta[ch];
  });
}

/** Sets a module's parameters (by name) to the given values. */
function setParams(m: nn.Module, values: Record<string, number[]>): void {
  kiln.tidy(() => {
    const state = m.stateDict();
    for (const [k, v] of Object.entries(values)) state[k] = kiln.tensor(v);
    m.loadStateDict(state);
  });
}

forEachBackend(() => {
  expectEveryTestToFreeItsTensors();

  describe('BatchNorm2d', () => {
    const gamma = [1.5, -0.5, 2];
    const beta = [0.1, 0, -1];

    it('training output and gradients equal the composition from primitive ops', async () => {
      const bn = new nn.BatchNorm2d(3, { momentum: 0.2 });
      setParams(bn, { weight: gamma, bias: beta });
      const x = randND([4, 3, 5, 6], 1, -2, 3);
      const r = randND([4, 3, 5, 6], 2);
      const run = (fused: boolean) =>
        kiln.tidy(() => {
          const xt = T(x).setRequiresGrad();
          const w = bn.weight!.reshape([3, 1, 1]);
          const b = bn.bias!.reshape([3, 1, 1]);
          const y = fused
            ? bn.forward(xt)
            : xt.sub(xt.mean([0, 2, 3], true)).mul(xt.variance([0, 2, 3], true).add(1e-5).rsqrt()).mul(w).add(b);
          y.mul(T(r)).sum().backward();
          const out = { y: y.dataSync(), dx: xt.grad!.dataSync(), dw: bn.weight!.grad!.dataSync(), db: bn.bias!.grad!.dataSync() };
          bn.zeroGrad();
          return out;
        });
      const fused = run(true);
      const composed = run(false);
      const tol = { atol: 1e-5, rtol: 1e-4 };
      assertClose(fused.y, composed.y, tol, 'output');
      assertClose(fused.dx, composed.dx, tol, 'd/dx');
      assertClose(fused.dw, composed.dw, { atol: 1e-4, rtol: 1e-4 }, 'd/dweight');
      assertClose(fused.db, composed.db, { atol: 1e-4, rtol: 1e-4 }, 'd/dbias');
      bn.dispose();
    });

    it('PyTorch semantics: running statistics after two steps (unbiased variance), eval uses them', async () => {
      const bn = new nn.BatchNorm2d(3, { momentum: 0.2 });
      setParams(bn, { weight: gamma, bias: beta });
      let runningMean = [0, 0, 0];
      let runningVar = [1, 1, 1];
      for (const [step, shape] of [[4, 3, 5, 6], [2, 3, 7, 3]].entries()) {
        const x = randND(shape, 10 + step, -1, 4);
        const y = kiln.tidy(() => bn.forward(T(x)));
        const { mean, variance, count } = channelStats(x);
        assertClose(await read(y), normalizeND(x, mean, variance, gamma, beta), { atol: 1e-5, rtol: 1e-4 }, `step ${step + 1} output`);
        y.dispose();
        runningMean = runningMean.map((r, c) => 0.8 * r + 0.2 * mean[c]);
        runningVar = runningVar.map((r, c) => 0.8 * r + 0.2 * variance[c] * (count / (count - 1)));
        assertClose(await read(bn.runningMean), runningMean, { atol: 1e-6, rtol: 1e-5 }, `step ${step + 1} running mean`);
        assertClose(await read(bn.runningVar), runningVar, { atol: 1e-6, rtol: 1e-5 }, `step ${step + 1} running variance`);
      }
      bn.eval();
      const x = randND([2, 3, 4, 4], 20);
      const y = kiln.tidy(() => bn.forward(T(x)));
      assertClose(await read(y), normalizeND(x, runningMean, runningVar, gamma, beta), { atol: 1e-5, rtol: 1e-4 }, 'eval output');
      assertClose(await read(bn.runningMean), runningMean, { atol: 1e-6, rtol: 1e-5 }, 'eval leaves the running mean alone');
      y.dispose();
      bn.dispose();
    });

    it('gradients match finite differences in training and eval mode', async () => {
      const bn = new nn.BatchNorm2d(2);
      setParams(bn, { weight: [1.5, -0.7], bias: [0.2, -0.1] });
      await gradCheck(bn, randND([3, 2, 2, 3], 30), { atol: 5e-3, rtol: 3e-2 });
      kiln.tidy(() => {
        bn.loadStateDict({ ...bn.stateDict(), runningMean: kiln.tensor([0.3, -0.2]), runningVar: kiln.tensor([0.5, 2]) });
      });
      bn.eval();
      await gradCheck(bn, randND([2, 2, 2, 2], 31), { atol: 5e-3, rtol: 3e-2 });
      bn.dispose();
    });

    it('affine false, buffers in the state dict, no gradient into the running statistics', () => {
      const bn = new nn.BatchNorm2d(4, { affine: false, eps: 1e-3 });
      expect(bn.parameters()).toEqual([]);
      expect(Object.keys(bn.stateDict())).toEqual(['runningMean', 'runningVar']);
      kiln.tidy(() => {
        const y = bn.forward(kiln.randn([2, 4, 3, 3], { seed: 3 }).setRequiresGrad());
        expect(y.requiresGrad).toBe(true);
        expect(bn.runningMean.requiresGrad || bn.runningVar.requiresGrad).toBe(false);
      });
      const full = new nn.BatchNorm2d(4);
      expect(Object.keys(full.stateDict())).toEqual(['weight', 'bias', 'runningMean', 'runningVar']);
      bn.dispose();
      full.dispose();
    });

    it('validates its input and options', () => {
      const bn = new nn.BatchNorm2d(3);
      kiln.tidy(() => {
        expectThrows(() => bn.forward(kiln.zeros([2, 4, 3, 3])), 'BatchNorm2d(3): expected input [batch, 3, height, width], got float32 [2, 4, 3, 3]');
        expectThrows(() => bn.forward(kiln.zeros([2, 3, 3])), 'BatchNorm2d(3): expected input [batch, 3, height, width], got float32 [2, 3, 3]');
        expectThrows(() => bn.forward(kiln.zeros([1, 3, 1, 1])), 'BatchNorm2d(3): training needs more than one value per channel, got input [1, 3, 1, 1]');
        expectThrows(() => bn.forward(kiln.zeros([2, 3, 2, 2], 'int32')), 'batchNorm', 'int32 [2, 3, 2, 2]');
        bn.eval();
        expect([...bn.forward(kiln.zeros([1, 3, 1, 1])).shape]).toEqual([1, 3, 1, 1]);
      });
      expectThrows(() => new nn.BatchNorm2d(0), 'BatchNorm2d: numFeatures must be a positive integer');
      expectThrows(() => new nn.BatchNorm2d(3, { momentum: -0.1 }), 'BatchNorm2d: momentum must be in [0, 1]');
      expectThrows(() => new nn.BatchNorm2d(3, { eps: 0 }), 'BatchNorm2d: eps must be > 0');
      bn.dispose();
    });

    it('kiln.batchNorm checks its vectors', () => {
      kiln.tidy(() => {
        const x = kiln.zeros([2, 3, 2, 2]);
        expectThrows(() => kiln.batchNorm(x, { weight: kiln.ones([2]) }), 'batchNorm: weight must be float32 [3]', 'got float32 [2]');
        expectThrows(() => kiln.batchNorm(x, { runningMean: kiln.zeros([3]) }), 'batchNorm: runningMean and runningVar must be given together');
        const stats = kiln.zeros([3]);
        expectThrows(() => kiln.batchNorm(x, { runningMean: stats, runningVar: stats }), 'batchNorm: runningMean and runningVar must be two different tensors');
        expectThrows(() => kiln.batchNorm(x, { momentum: 2 }), 'batchNorm: momentum must be in [0, 1]');
      });
    });
  });

  describe('pooling modules', () => {
    it('MaxPool2d and AvgPool2d equal the functions; stride defaults to the kernel size', async () => {
      const x = randND([2, 3, 6, 7], 40);
      const cases: Array<[nn.Module, (t: Tensor) => Tensor, number[]]> = [
        [new nn.MaxPool2d(2), (t) => kiln.maxPool2d(t, 2, { stride: 2 }), [2, 3, 3, 3]],
        [new nn.MaxPool2d(3, { stride: 2, padding: 1 }), (t) => kiln.maxPool2d(t, 3, { stride: 2, padding: 1 }), [2, 3, 3, 4]],
        [new nn.AvgPool2d([2, 3]), (t) => kiln.avgPool2d(t, [2, 3], { stride: [2, 3] }), [2, 3, 3, 2]],
        [new nn.AvgPool2d(3, { stride: 1, padding: 1, countIncludePad: false }), (t) => kiln.avgPool2d(t, 3, { stride: 1, padding: 1, countIncludePad: false }), [2, 3, 6, 7]],
      ];
      for (const [module, fn, shape] of cases) {
        const [got, want] = kiln.tidy(() => [module.forward(T(x)), fn(T(x))]);
        expect([...got.shape]).toEqual(shape);
        assertClose(await read(got), await read(want), { atol: 0, rtol: 0 }, module.constructor.name);
        kiln.dispose([got, want]);
      }
    });

    it('GlobalAvgPool2d: [N, C, H, W] -> [N, C] channel means', async () => {
      const x = randND([2, 3, 4, 5], 41);
      const y = kiln.tidy(() => new nn.GlobalAvgPool2d().forward(T(x)));
      expect([...y.shape]).toEqual([2, 3]);
      const want = Array.from({ length: 6 }, (_, p) => x.data.slice(p * 20, (p + 1) * 20).reduce((a, v) => a + v, 0) / 20);
      assertClose(await read(y), want, { atol: 1e-6, rtol: 1e-5 });
      y.dispose();
      kiln.tidy(() => expectThrows(() => new nn.GlobalAvgPool2d().forward(kiln.zeros([2, 3])), 'GlobalAvgPool2d: expected input [batch, channels, height, width], got float32 [2, 3]'));
    });

    it("AdaptiveAvgPool2d: PyTorch's (overlapping) windows for any input size; gradients", async () => {
      const x = randND([2, 2, 7, 5], 42);
      const [h, w] = [7, 5];
      for (const size of [1, [3, 2], [7, 5], [4, 4]] as Array<number | [number, number]>) {
        const [oh, ow] = typeof size === 'number' ? [size, size] : size;
        const pool = new nn.AdaptiveAvgPool2d(size);
        const y = kiln.tidy(() => pool.forward(T(x)));
        expect([...y.shape]).toEqual([2, 2, oh, ow]);
        const want: number[] = [];
        for (let p = 0; p < 4; p++) {
          for (let i = 0; i < oh; i++) {
            for (let j = 0; j < ow; j++) {
              const [r0, r1] = [Math.floor((i * h) / oh), Math.ceil(((i + 1) * h) / oh)];
              const [c0, c1] = [Math.floor((j * w) / ow), Math.ceil(((j + 1) * w) / ow)];
              let sum = 0;
              for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) sum += x.data[p * h * w + r * w + c];
              want.push(sum / ((r1 - r0) * (c1 - c0)));
            }
          }
        }
        assertClose(await read(y), want, { atol: 1e-6, rtol: 1e-5 }, `outputSize ${JSON.stringify(size)}`);
        y.dispose();
      }
      await gradCheck(new nn.AdaptiveAvgPool2d([3, 2]), randND([1, 2, 5, 4], 43));
      expectThrows(() => new nn.AdaptiveAvgPool2d(0), 'AdaptiveAvgPool2d: outputSize must be a positive integer');
    });
  });

  it('a small CNN head (BatchNorm2d, pooling, Linear) trains, and save -> load reproduces it in eval', async () => {
    const build = (seed: number) =>
      new nn.Sequential(
        new nn.BatchNorm2d(3),
        new nn.MaxPool2d(2),
        new nn.ReLU(),
        new nn.AvgPool2d(2, { stride: 1, padding: 1 }),
        new nn.GlobalAvgPool2d(),
        new nn.Linear(3, 2, { seed }),
      );
    const model = build(1);
    const x = kiln.randn([8, 3, 8, 8], { seed: 5 });
    const y = kiln.tensor(Int32Array.from([0, 1, 0, 1, 1, 0, 1, 0]));
    const opt = new kiln.optim.SGD(model.parameters(), { lr: 0.1 });
    for (let i = 0; i < 3; i++) {
      kiln.tidy(() => {
        opt.zeroGrad();
        kiln.crossEntropy(model.forward(x), y).backward();
        opt.step();
      });
    }
    // Training moved the parameters and the running statistics.
    expect(Array.from(await (model.layers[0] as nn.BatchNorm2d).runningVar.data()).some((v) => v !== 1)).toBe(true);
    model.eval();
    const want = kiln.tidy(() => model.forward(x));
    const dir = mkdtempSync(join(tmpdir(), 'kiln-cnn-'));
    kiln.saveModel(join(dir, 'm'), { stateDict: model.stateDict(), config: { layers: 'bn-maxpool-avgpool-gap-linear' } });
    const fresh = build(2);
    const { stateDict } = kiln.loadModel(join(dir, 'm'));
    expect(Object.keys(stateDict).sort()).toEqual(['0.bias', '0.runningMean', '0.runningVar', '0.weight', '5.bias', '5.weight']);
    fresh.loadStateDict(stateDict);
    kiln.dispose(stateDict);
    fresh.eval();
    const got = kiln.tidy(() => fresh.forward(x));
    expect(Array.from(await got.data())).toEqual(Array.from(await want.data()));
    kiln.dispose([x, y, want, got]);
    opt.dispose();
    model.dispose();
    fresh.dispose();
    rmSync(dir, { recursive: true, force: true });
  });
});
