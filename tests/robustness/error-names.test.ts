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
