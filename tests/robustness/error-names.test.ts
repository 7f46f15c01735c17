/**
 * Errors name what the user called (issue 13, class 8): every public function, Tensor method and
 * layer's forward renames errors raised by the ops it is built from
 * (ts/named-errors.ts), keeping the op that raised it and the original error as `cause`. And the same bad call is worded identically on every backend.
 */
import { describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { BACKENDS, forEachBackend } from '../backends.js';
import { expectThrows } from '../helpers.js';

class Net extends kiln.nn.Module {
  readonly embed = new kiln.nn.Embedding(4, 2, { seed: 1 });
  forward(ids: kiln.Tensor): kiln.Tensor {
    return this.embed.forward(ids);
  }
}

class LossInForward extends kiln.nn.Module {
  forward(x: kiln.Tensor): kiln.Tensor {
    return kiln.binaryCrossEntropy(x, kiln.tensor([1, 0], [2], 'int32'));
  }
}

forEachBackend(() => {
  describe('a composite function or layer names itself', () => {
    it('binaryCrossEntropy with int32 targets says binaryCrossEntropy, and which op raised it', () => {
      const logits = kiln.tensor([0.5, -1]);
      const targets = kiln.tensor([1, 0], [2], 'int32');
      const e = expectThrows(() => kiln.binaryCrossEntropy(logits, targets), /^binaryCrossEntropy: expected float32 tensors, got float32 \[2\] and int32 \[2\] \(raised by mul\)$/);
      expect((e.cause as Error).message).toMatch(/^mul: /);
      kiln.dispose([logits, targets]);
    });

    it('nn.Embedding with float ids says Embedding, not gather', () => {
      const embed = new kiln.nn.Embedding(4, 2, { seed: 1 });
      const ids = kiln.tensor([1, 2]);
      expectThrows(() => embed.forward(ids), /^Embedding: indices must be int32, got float32 \[2\] \(raised by gather\)$/);
      embed.dispose();
      ids.dispose();
    });

    it('inside containers and user modules the innermost layer names it', () => {
      const ids = kiln.tensor([1, 2]);
      const seq = new kiln.nn.Sequential(new kiln.nn.Embedding(4, 2, { seed: 1 }));
      expectThrows(() => seq.forward(ids), /^Embedding: indices must be int32/);
      const net = new Net();
      expectThrows(() => net.forward(ids), /^Embedding: /);
      seq.dispose();
      net.dispose();
      ids.dispose();
    });

    it('a composite function called inside a layer is named in the trail', () => {
      const m = new LossInForward();
      const x = kiln.tensor([0.5, -1]);
      expectThrows(() => m.forward(x), /^LossInForward: expected float32 tensors.*\(raised by mul inside binaryCrossEntropy\)$/);
      x.dispose();
    });

    it("a layer's or function's own messages are left as they are", () => {
      const lin = new kiln.nn.Linear(3, 2, { seed: 1 });
      const a = kiln.ones([2]);
      const b = kiln.ones([3]);
      expectThrows(() => kiln.mse(a, b), /^mse: predictions \[2\] and targets \[3\] must have the same shape$/);
      expectThrows(() => lin.forward(kiln.tensor([1, 2])), /^Linear\(3 -> 2\): expected input \[\.\.\., 3\], got float32 \[2\]$/);
      lin.dispose();
      kiln.dispose([a, b]);
    });

    it('transpose names itself, not the permute it forwards to', () => {
      const e = expectThrows(() => kiln.transpose(0.5 as unknown as kiln.Tensor, [0]), /^transpose: argument 'x' must be a Tensor, got number 0\.5 \(raised by permute\)$/);
      expect((e.cause as Error).message).toMatch(/^permute: /);
      const x = kiln.ones([2, 3]);
      expectThrows(() => kiln.transpose(x, [0]), /^transpose: .*\(raised by permute\)$/);
      expectThrows(() => kiln.permute(x, [0]), /^permute: /);
      x.dispose();
    });

    it('a Tensor method names the method, and errors from the JavaScript engine are named too', () => {
      const x = kiln.ones([2, 3]);
      expectThrows(() => x.transpose([0]), /^transpose: .*\(raised by permute\)$/);
      const e = expectThrows(() => x.expandDims(9), /^expandDims: axis 9 is out of range for a tensor of rank 3 \(raised by unsqueeze\)$/);
      expect((e.cause as Error).message).toMatch(/^unsqueeze: /);
      expectThrows(() => kiln.concat(3 as unknown as kiln.Tensor[]), /^concat: /);
      x.dispose();
    });

    it('in a layer built from layers the innermost names it, as written ("LayerNorm([4]): ..."); kiln.losses is the same function', () => {
      const block = new kiln.nn.TransformerEncoderLayer(4, 2, { seed: 1 });
      expectThrows(() => block.forward(kiln.ones([2, 3, 5])), /^LayerNorm\(\[4\]\): expected input \[\.\.\., 4\], got float32 \[2, 3, 5\]$/);
      expect(kiln.losses.mse).toBe(kiln.mse);
      block.dispose();
    });

    it('callbacks keep their own errors: tidy and grad do not rename what the user wrote', () => {
      expectThrows(() => kiln.tidy(() => kiln.mul(kiln.ones([2]), kiln.ones([2], 'int32'))), /^mul: expected float32 tensors/);
    });

    it('errors outside any composite are unchanged, and a layer works normally after an error', () => {
      const a = kiln.ones([2]);
      const i = kiln.ones([2], 'int32');
      expectThrows(() => kiln.mul(a, i), /^mul: expected float32 tensors/);
      const embed = new kiln.nn.Embedding(4, 2, { seed: 1 });
      const ids = kiln.tensor([3, 0], [2], 'int32');
      expect(embed.forward(ids).shape).toEqual([2, 2]);
      embed.dispose();
      kiln.dispose([a, i, ids]);
    });
  });
});

/**
 * Layer constructors name themselves: each checks its own arguments before it builds anything
 * (ts/nn/layer-args.ts), so the message names the layer, the option, the value and what is
 * allowed, never the op or inner layer that would have tripped over it ("full: ...", "randu: ...",
 * "Linear: inFeatures must be ...") and never a raw TypeError.
 */
const nn = kiln.nn;
const BAD_OPTIONS: Array<[string, () => unknown, string]> = [
  ['BatchNorm1d', () => new nn.BatchNorm1d(4, { affine: 'yes' as unknown as boolean }), "BatchNorm1d: affine must be true or false, got 'yes'"],
  ['BatchNorm2d', () => new nn.BatchNorm2d(4, { momentum: '0.1' as unknown as number }), "BatchNorm2d: momentum must be in [0, 1], got '0.1'"],
  ['LayerNorm', () => new nn.LayerNorm(4, null as unknown as object), 'LayerNorm: options must be an object, got null'],
  ['RNN', () => new nn.RNN(4, 8, { nonlinearity: 'sigmoid' as 'tanh' }), "RNN: nonlinearity must be 'tanh' or 'relu', got 'sigmoid'"],
  ['GRU', () => new nn.GRU(4, 8, { seed: 0.5 }), 'GRU: seed must be a non-negative integer (at most 2^53), got 0.5'],
  ['LSTM', () => new nn.LSTM(4, 8, null as unknown as object), 'LSTM: options must be an object, got null'],
  ['GCNConv', () => new nn.GCNConv(4, 2, { init: 7 as unknown as nn.InitializerName }), /^GCNConv: init must be an initializer function or the name of one \(glorotUniform, .*\), got 7$/],
  ['ConvTranspose2d', () => new nn.ConvTranspose2d(2, 2, 3, { outputPadding: -1 }), 'ConvTranspose2d: outputPadding must be an integer >= 0 or a pair [height, width] of them, got -1'],
  ['MultiHeadAttention', () => new nn.MultiHeadAttention(8, 2, { kDim: 0 }), 'MultiHeadAttention: kDim must be a positive integer, got 0'],
  ['SAGEConv', () => new nn.SAGEConv(undefined as unknown as number, 2), 'SAGEConv: inFeatures must be a positive integer, got undefined'],
  // null falls back like undefined where an option has a default; without one, the error shows the null the user wrote.
  ['LSTM', () => new nn.LSTM(null as unknown as number, 8), 'LSTM: inputSize must be a positive integer, got null'],
  ['BasicBlock', () => new nn.BasicBlock(3, 0), 'BasicBlock: outChannels must be a positive integer, got 0'],
  ['LearnedPositionalEmbedding', () => new nn.LearnedPositionalEmbedding(0, 4), 'LearnedPositionalEmbedding: maxLength must be a positive integer, got 0'],
  ['TransformerEncoderLayer', () => new nn.TransformerEncoderLayer(6, 4), 'TransformerEncoderLayer: dModel must be divisible by numHeads (6 / 4 is not whole)'],
  ['TransformerDecoderLayer', () => new nn.TransformerDecoderLayer(8, 2, { dimFeedforward: -1 }), 'TransformerDecoderLayer: dimFeedforward must be a positive integer, got -1'],
  ['Graph', () => new nn.Graph(kiln.tensor([0], [1], 'int32') as unknown as number[], [0], 2), 'Graph: src must be an array or a typed array of node indices, got an int32 Tensor [1]'],
  ['DDPMSchedule', () => new nn.DDPMSchedule(undefined as unknown as number[]), 'DDPMSchedule: betas must be an array or a typed array of numbers in (0, 1), got undefined'],
];

/** Argument lists no layer accepts whole (each class must refuse them naming itself, or accept them). */
const BAD_ARGUMENT_LISTS: unknown[][] = [[], [undefined, undefined], [-1, -1, -1], [NaN, 2, 2], [2.5, 2, 2], ['4', '4', '4'], [4, 4, 4, null], [4, 4, 4, 7], [4, 4, { seed: -1, dropout: 2, bias: 'no' }], [2 ** 53, 2 ** 53, 2 ** 53], [[4], [4], [4]]];

forEachBackend(() => {
  describe('a layer constructor names the layer, the option, the value and what is allowed', () => {
    it.each(BAD_OPTIONS)('%s', (_name, make, message) => {
      kiln.tidy(() => {
        const e = expectThrows(make);
        if (typeof message === 'string') expect(e.message).toBe(message);
        else expect(e.message).toMatch(message);
        expect(e).not.toBeInstanceOf(TypeError);
      });
    });

    it('weights too large to allocate are refused naming the layer (and the op that found it)', () => {
      // 2^44 floats: no machine grants 64 TiB, whatever the argument checks allow.
      expectThrows(() => new nn.Linear(2 ** 22, 2 ** 22), /^Linear: .*\(raised by randu/);
      expectThrows(() => new nn.BatchNorm2d(2 ** 44), /^BatchNorm2d: .*\(raised by full/);
      // Built from inner layers: the layer the user called names it, the trail says where.
      expectThrows(() => new nn.TransformerEncoderLayer(2 ** 22, 2), /^TransformerEncoderLayer: .*\(raised by randu inside /);
      expectThrows(() => new nn.BasicBlock(2 ** 21, 2 ** 21), /^BasicBlock: .*\(raised by randu inside Conv2d\)$/);
    });

    it('every class of kiln.nn, found by enumerating the namespace, names itself for bad arguments', () => {
      const classes = Object.entries(nn).filter(([k, v]) => /^[A-Z]/.test(k) && typeof v === 'function' && k !== 'Module') as Array<[string, new (...a: unknown[]) => { dispose?(): void }]>;
      expect(classes.length).toBeGreaterThanOrEqual(40);
      const problems: string[] = [];
      let refused = 0;
      for (const [name, Layer] of classes) {
        for (const args of BAD_ARGUMENT_LISTS) {
          kiln.tidy(() => {
            try {
              new Layer(...args).dispose?.();
            } catch (e) {
              refused++;
              const message = (e as Error).message;
              if (!(e instanceof Error) || !new RegExp(`^${name}[:.( ]`).test(message)) problems.push(`new nn.${name}(${args.map((a) => JSON.stringify(a)).join(', ')}): ${message}`);
            }
          });
        }
      }
      expect(problems, problems.join('\n')).toEqual([]);
      expect(refused, 'most of these argument lists are refused').toBeGreaterThan(classes.length * 5);
    });
  });
});

/** Bad calls whose messages must read the same on every backend. */
const BAD_CALLS: Record<string, () => unknown> = {
  'mul int32 and float32': () => kiln.mul(kiln.ones([2]), kiln.ones([2], 'int32')),
  'add of unbroadcastable shapes': () => kiln.add(kiln.ones([2, 3]), kiln.ones([4])),
  'matmul inner mismatch': () => kiln.matmul(kiln.ones([2, 3]), kiln.ones([4, 2])),
  'reshape to the wrong count': () => kiln.reshape(kiln.ones([2, 3]), [4, 2]),
  'sum over a missing axis': () => kiln.sum(kiln.ones([2, 3]), 5),
  'slice out of bounds': () => kiln.slice(kiln.ones([3]), [2], [5]),
  'gather with float ids': () => kiln.gather(kiln.ones([3, 2]), kiln.ones([2]), 0),
  'crossEntropy with float targets': () => kiln.crossEntropy(kiln.ones([2, 3]), kiln.ones([2])),
  'binaryCrossEntropy with int32 targets': () => kiln.binaryCrossEntropy(kiln.ones([2]), kiln.ones([2], 'int32')),
  'Embedding with float ids': () => new kiln.nn.Embedding(3, 2, { seed: 1 }).forward(kiln.ones([2])),
  'conv2d with a rank-3 input': () => kiln.conv2d(kiln.ones([1, 3, 3]), kiln.ones([1, 1, 2, 2])),
  'variance correction above the count': () => kiln.variance(kiln.ones([2]), 0, false, 5),
  'eye(-1)': () => kiln.eye(-1),
  // Scalars cross WASM as f64, where JS converts the value itself (1 for true, 2 for '2', NaN for
  // 'x'); ts/backends/wasm-guard.ts checks their JS type so WASM refuses what native refuses.
  'sum with a number for keepDims': () => kiln.sum(kiln.ones([2, 3]), 0, 1 as unknown as boolean),
  'softmax with a string axis': () => kiln.softmax(kiln.ones([2, 3]), '1' as unknown as number),
  'oneHot with a string depth': () => kiln.oneHot(kiln.tensor([0, 1], [2], 'int32'), 'x' as unknown as number),
  'matmul with a number for transposeB': () => kiln.matmul(kiln.ones([2, 2]), kiln.ones([2, 2]), false, 0 as unknown as boolean),
  'leakyRelu with a boolean alpha': () => kiln.leakyRelu(kiln.ones([2]), true as unknown as number),
  'randn with a string std': () => kiln.randn([2], { std: '2' as unknown as number }),
};

describe.runIf(BACKENDS.includes('native') && BACKENDS.includes('wasm'))('native and WASM word the same error identically', () => {
  it.each(Object.keys(BAD_CALLS))('%s', async (name) => {
    const messages: Record<string, string> = {};
    for (const backend of ['native', 'wasm'] as const) {
      await kiln.setBackend(backend);
      kiln.tidy(() => {
        messages[backend] = expectThrows(BAD_CALLS[name]).message;
      });
    }
    expect(messages.wasm).toBe(messages.native);
  });
});
