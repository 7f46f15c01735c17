/**
 * PyTorch state dicts in and out of Kiln modules, checked against a Python side that knows nothing
 * of Kiln (fixtures/torch_reference.py): it writes weights under PyTorch's names and layouts with
 * numpy + safetensors and computes each layer's forward pass from PyTorch's documented equations.
 *
 * - PyTorch -> Kiln: load the weights, run Kiln's forward, compare with the reference output.
 * - Kiln -> PyTorch: save a Kiln model with PyTorch's names; Python checks names, shapes and dtypes
 *   against PyTorch's, computes the forward from them, and it matches Kiln's; the file Python
 *   re-saves loads back into Kiln bit for bit.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { nn, type Tensor } from '../../ts/index.js';
import { loadPyTorchStateDict, loadPyTorchWeights, loadTensors, pytorchStateDict, savePyTorchWeights, saveTensors } from '../../ts/io/index.js';
import { forEachBackend } from '../backends.js';
import { expectNoLeaks, expectSameTensors, useTempDirs, pythonScript } from './io-helpers.js';

const python = pythonScript('torch_reference.py');

type Config = Record<string, any>;

/** The Kiln module matching each kind's configuration (torch_reference.py's KINDS). */
const BUILD: Record<string, (c: Config) => nn.Module<any, any>> = {
  linear: (c) => new nn.Linear(c.inp, c.out, { seed: 1 }),
  conv2d: (c) => new nn.Conv2d(c.cin, c.cout, c.k, { stride: c.stride, padding: c.pad, groups: c.groups, seed: 2 }),
  conv2d_groups: (c) => new nn.Conv2d(c.cin, c.cout, c.k, { stride: c.stride, padding: c.pad, groups: c.groups, bias: c.bias, seed: 3 }),
  conv_transpose2d: (c) => new nn.ConvTranspose2d(c.cin, c.cout, c.k, { stride: c.stride, padding: c.pad, outputPadding: c.out_pad, seed: 4 }),
  batchnorm2d: (c) => new nn.BatchNorm2d(c.c),
  batchnorm1d: (c) => new nn.BatchNorm1d(c.c),
  layernorm: (c) => new nn.LayerNorm(c.shape),
  embedding: (c) => new nn.Embedding(c.num, c.dim, { seed: 5 }),
  lstm: (c) => new nn.LSTM(c.inp, c.hidden, { numLayers: c.layers, bidirectional: c.bidirectional, seed: 6 }),
  gru: (c) => new nn.GRU(c.inp, c.hidden, { numLayers: c.layers, bidirectional: c.bidirectional, seed: 7 }),
  rnn: (c) => new nn.RNN(c.inp, c.hidden, { numLayers: c.layers, bidirectional: c.bidirectional, seed: 8 }),
  mha: (c) => new nn.MultiHeadAttention(c.d, c.heads, { seed: 9 }),
  transformer_encoder: (c) => new nn.TransformerEncoderLayer(c.d, c.heads, { dimFeedforward: c.ff, seed: 12 }),
  transformer_decoder: (c) => new nn.TransformerDecoderLayer(c.d, c.heads, { dimFeedforward: c.ff, seed: 13 }),
  sequential: (c) => new nn.Sequential(new nn.Linear(c.sizes[0], c.sizes[1], { seed: 10 }), new nn.ReLU(), new nn.Linear(c.sizes[1], c.sizes[2], { seed: 11 })),
};
const KINDS = Object.keys(BUILD);

/** The layer's main output (recurrent layers return [output, state]) for io's x (and memory); call inside tidy. */
function run(m: nn.Module<any, any>, io: Record<string, Tensor>): Tensor {
  const y = io.memory === undefined ? m.forward(io.x) : m.forward(io.x, io.memory);
  return (Array.isArray(y) ? y[0] : y) as Tensor;
}

function expectClose(actual: Tensor, expected: Tensor, what: string, tolerance = 2e-5): void {
  expect([...actual.shape], `${what} shape`).toEqual([...expected.shape]);
  const a = actual.dataSync();
  const e = expected.dataSync();
  let worst = 0;
  for (let i = 0; i < e.length; i++) worst = Math.max(worst, Math.abs(a[i] - e[i]) / (1 + Math.abs(e[i])));
  expect(worst, `${what}: largest relative difference`).toBeLessThan(tolerance);
}

const tempDir = useTempDirs();

/** One reference directory per storage dtype, made once for the whole file: <dir>/<kind>/{weights,io}.safetensors. */
const references = new Map<string, Promise<{ dir: string; configs: Record<string, Config> }>>();
function reference(dtype = 'F32'): Promise<{ dir: string; configs: Record<string, Config> }> {
  if (!references.has(dtype)) {
    const dir = tempDir();
    references.set(dtype, python('make-all', dir, dtype).then((out) => ({ dir, configs: JSON.parse(out) as Record<string, Config> })));
  }
  return references.get(dtype)!;
}

function isBatchNorm(m: nn.Module<any, any>): m is nn.BatchNorm1d | nn.BatchNorm2d {
  return m instanceof nn.BatchNorm1d || m instanceof nn.BatchNorm2d;
}

forEachBackend(() => {
  expectNoLeaks();

  describe('PyTorch state dicts -> Kiln modules (reference forward in numpy)', () => {
    /** Loads <kind>'s reference weights into a fresh Kiln module and compares its forward with the reference output. */
    async function expectMatchesReference(kind: string, dtype: string): Promise<void> {
      const { dir, configs } = await reference(dtype);
      const model = BUILD[kind](configs[kind]).eval();
      loadPyTorchWeights(model, path.join(dir, kind, 'weights.safetensors'));
      const { tensors: io } = loadTensors(path.join(dir, kind, 'io.safetensors'));
      const y = kiln.tidy(() => kiln.noGrad(() => run(model, io)));
      expectClose(y, io.y, `${kind} (${dtype} weights)`);
      if (isBatchNorm(model)) expect(model.numBatchesTracked).toBe(7);
      kiln.dispose([y, io]);
      model.dispose();
    }

    it.each(KINDS)('%s: PyTorch weights load and the forward pass matches the reference', (kind) => expectMatchesReference(kind, 'F32'));

    it.each([['sequential', 'BF16'], ['conv2d', 'F16'], ['lstm', 'F64'], ['mha', 'BF16']])('%s with %s weights loads (converted exactly) and matches', (kind, dtype) => expectMatchesReference(kind, dtype));
  });

  describe('Kiln modules -> PyTorch state dicts', () => {
    // Kiln saves every kind (F32, and two kinds as BF16); then one Python run per directory checks
    // the names against PyTorch's and computes the reference outputs from the saved weights.
    const models = new Map<string, nn.Module<any, any>>();
    const BF16_KINDS = ['sequential', 'mha'];
    let configs: Record<string, Config> = {};
    let root = '';
    let rootBf16 = '';
    beforeAll(async () => {
      const made = await reference('F32');
      configs = made.configs;
      root = tempDir();
      rootBf16 = tempDir();
      for (const kind of KINDS) {
        const model = BUILD[kind](configs[kind]);
        if (isBatchNorm(model)) {
          // Two training steps, so the running statistics and num_batches_tracked are not their defaults.
          const shape = kind === 'batchnorm2d' ? [4, configs[kind].c, 3, 3] : [6, configs[kind].c];
          for (const seed of [1, 2]) kiln.tidy(() => { model.forward(kiln.randn(shape, { seed })); });
        }
        models.set(kind, model.eval());
        for (const [dir, dtype] of [[root, 'F32'], [rootBf16, 'BF16']] as const) {
          if (dtype === 'BF16' && !BF16_KINDS.includes(kind)) continue;
          fs.mkdirSync(path.join(dir, kind));
          fs.copyFileSync(path.join(made.dir, kind, 'io.safetensors'), path.join(dir, kind, 'io.safetensors'));
          savePyTorchWeights(path.join(dir, kind, 'kiln.safetensors'), model, { dtype });
        }
      }
      await Promise.all([python('forward-all', root), python('forward-all', rootBf16)]);
    });
    afterAll(() => {
      for (const m of models.values()) m.dispose();
    });

    it.each(KINDS)('%s: saved with PyTorch names; the reference forward from them matches Kiln, and Python\'s re-save loads back bit for bit', (kind) => {
      const model = models.get(kind)!;
      const { tensors: io } = loadTensors(path.join(root, kind, 'io.safetensors'));
      const { tensors: out } = loadTensors(path.join(root, kind, 'out.safetensors'));
      const y = kiln.tidy(() => kiln.noGrad(() => run(model, io)));
      expectClose(y, out.y, kind);
      const again = BUILD[kind](configs[kind]);
      loadPyTorchWeights(again, path.join(root, kind, 'out.safetensors.weights.safetensors'));
      expectSameTensors(again.stateDict(), model.stateDict());
      if (isBatchNorm(model)) {
        expect(model.numBatchesTracked).toBe(2);
        expect((again as typeof model).numBatchesTracked).toBe(2);
      }
      kiln.dispose([y, io, out]);
      again.dispose();
    });

    it.each(BF16_KINDS)('%s saved as BF16: Python reads BF16 and its forward matches Kiln\'s with the rounded weights', (kind) => {
      const rounded = BUILD[kind](configs[kind]).eval();
      loadPyTorchWeights(rounded, path.join(rootBf16, kind, 'kiln.safetensors'));
      const { tensors: io } = loadTensors(path.join(rootBf16, kind, 'io.safetensors'));
      const { tensors: out } = loadTensors(path.join(rootBf16, kind, 'out.safetensors'));
      const y = kiln.tidy(() => kiln.noGrad(() => run(rounded, io)));
      expectClose(y, out.y, `${kind} BF16`);
      kiln.dispose([y, io, out]);
      rounded.dispose();
    });
  });

  describe('names and errors', () => {
    it('a model of nested layers has exactly PyTorch\'s keys', () => {
      class Net extends nn.Module {
        readonly features = new nn.Sequential(new nn.Conv2d(1, 2, 3), new nn.BatchNorm2d(2), new nn.ReLU());
        readonly attn = new nn.MultiHeadAttention(4, 2, { kDim: 3, vDim: 5, bias: false });
        readonly rnn = new nn.GRU(4, 3, { bidirectional: true });
        forward(x: Tensor): Tensor { return x; }
      }
      const net = new Net();
      const state = pytorchStateDict(net);
      expect(Object.fromEntries(Object.entries(state).map(([k, t]) => [k, `${t.dtype} [${t.shape.join(', ')}]`]))).toEqual({
        'features.0.weight': 'float32 [2, 1, 3, 3]',
        'features.0.bias': 'float32 [2]',
        'features.1.weight': 'float32 [2]',
        'features.1.bias': 'float32 [2]',
        'features.1.running_mean': 'float32 [2]',
        'features.1.running_var': 'float32 [2]',
        'features.1.num_batches_tracked': 'int32 []',
        'attn.q_proj_weight': 'float32 [4, 4]',
        'attn.k_proj_weight': 'float32 [4, 3]',
        'attn.v_proj_weight': 'float32 [4, 5]',
        'attn.out_proj.weight': 'float32 [4, 4]',
        'rnn.weight_ih_l0': 'float32 [9, 4]',
        'rnn.weight_hh_l0': 'float32 [9, 3]',
        'rnn.bias_ih_l0': 'float32 [9]',
        'rnn.bias_hh_l0': 'float32 [9]',
        'rnn.weight_ih_l0_reverse': 'float32 [9, 4]',
        'rnn.weight_hh_l0_reverse': 'float32 [9, 3]',
        'rnn.bias_ih_l0_reverse': 'float32 [9]',
        'rnn.bias_hh_l0_reverse': 'float32 [9]',
      });
      // And back: the same dict loads into a fresh model and reproduces every tensor.
      const fresh = new Net();
      loadPyTorchStateDict(fresh, state);
      expectSameTensors(fresh.stateDict(), net.stateDict());
      kiln.dispose(state);
      net.dispose();
      fresh.dispose();
    });

    it('a transformer encoder layer uses PyTorch\'s self_attn / linear1 / norm1 names', () => {
      const layer = new nn.TransformerEncoderLayer(8, 2, { dimFeedforward: 16 });
      const state = pytorchStateDict(layer);
      expect(Object.keys(state).sort()).toEqual([
        'linear1.bias', 'linear1.weight', 'linear2.bias', 'linear2.weight', 'norm1.bias', 'norm1.weight', 'norm2.bias', 'norm2.weight',
        'self_attn.in_proj_bias', 'self_attn.in_proj_weight', 'self_attn.out_proj.bias', 'self_attn.out_proj.weight',
      ]);
      kiln.dispose(state);
      layer.dispose();
    });

    it('missing, unexpected and mis-shaped keys are all listed with shapes, and nothing is loaded', () => {
      const model = new nn.Sequential(new nn.Linear(4, 3), new nn.BatchNorm1d(3));
      const before = model.stateDict()['0.weight'].dataSync().slice();
      const state = {
        '0.weight': kiln.zeros([4, 3]),
        '1.weight': kiln.zeros([3]),
        '1.bias': kiln.zeros([3]),
        '1.running_mean': kiln.zeros([3]),
        '1.num_batches_tracked': kiln.zeros([]),
        '2.weight': kiln.zeros([5, 5]),
      };
      let message = '';
      try {
        loadPyTorchStateDict(model, state);
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).toContain('loadPyTorchStateDict: the state dict does not match Sequential; nothing was loaded');
      expect(message).toMatch(/missing from the state dict \(2\):\n {4}0\.bias: float32 \[3\]\n {4}1\.running_var: float32 \[3\]/);
      expect(message).toMatch(/unexpected in the state dict \(1\):\n {4}2\.weight: float32 \[5, 5\]/);
      expect(message).toMatch(/shape or dtype mismatch \(2\):\n {4}0\.weight: module float32 \[3, 4\], state dict float32 \[4, 3\]\n {4}1\.num_batches_tracked: module int32 \[\], state dict float32 \[\]/);
      expect(model.stateDict()['0.weight'].dataSync()).toEqual(before);
      // strict: false loads the keys that fit and reports the rest; a mis-shaped key still throws.
      kiln.dispose([state['0.weight'], state['1.num_batches_tracked']]);
      const partial = { '1.weight': state['1.weight'], '1.bias': state['1.bias'], '2.weight': state['2.weight'] };
      expect(loadPyTorchStateDict(model, partial, { strict: false })).toEqual({
        missingKeys: ['0.weight', '0.bias', '1.running_mean', '1.running_var', '1.num_batches_tracked'],
        unexpectedKeys: ['2.weight'],
      });
      expect([...model.stateDict()['1.weight'].dataSync()]).toEqual([0, 0, 0]);
      kiln.dispose([state, partial]);
      model.dispose();
    });

    it('loadPyTorchWeights names itself and the file in its errors', () => {
      const dir = tempDir();
      const file = path.join(dir, 'w.safetensors');
      const w = kiln.zeros([2, 2]);
      saveTensors(file, { weight: w });
      const model = new nn.Linear(2, 2);
      expect(() => loadPyTorchWeights(model, file)).toThrow(new RegExp(`loadPyTorchWeights: '.*w.safetensors': the state dict does not match Linear[^]*missing from the state dict \\(1\\):\\n {4}bias: float32 \\[2\\]`));
      expect(() => loadPyTorchWeights(model, dir)).toThrow(/loadPyTorchWeights: the directory '.*' has neither model.safetensors.index.json nor model.safetensors/);
      expect(() => loadPyTorchWeights(model, path.join(dir, 'nope'))).toThrow(/loadPyTorchWeights: '.*nope' does not exist/);
      // A prefix selects a sub-model's tensors ('backbone.weight' -> 'weight').
      const b = kiln.ones([2]);
      saveTensors(file, { 'backbone.weight': w, 'backbone.bias': b, 'head.weight': w });
      loadPyTorchWeights(model, file, { prefix: 'backbone.' });
      expect([...model.bias!.dataSync()]).toEqual([1, 1]);
      expect(fs.existsSync(file)).toBe(true);
      kiln.dispose([w, b]);
      model.dispose();
    });
  });
});
