/**
 * kiln.onnx.save: a traced Kiln model loads in onnxruntime (the `onnxruntime` wheel of Kiln's
 * venv, the reference) and its outputs match Kiln's, for each family ONNX can express: MLP,
 * CNN with a ResNet block and BatchNorm, LSTM and bidirectional GRU, Transformer encoder and
 * decoder layers. The exported file also imports back into Kiln. A model using an op ONNX export
 * lacks fails naming it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { nn, type Tensor } from '../../ts/index.js';
import { forEachBackend } from '../backends.js';
import { expectThrows } from '../helpers.js';
import { Decoder, Encoder, expectClose, onnxruntime } from './graphs.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-onnx-export-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Exports `model`, runs it in onnxruntime and in Kiln (the model, and the file imported back), and compares. */
function roundTrip(name: string, model: nn.Module<any, any>, inputs: Tensor[]): void {
  const path = join(dir, `${name}.onnx`);
  model.eval();
  kiln.onnx.save(model, inputs, path);
  const expected = kiln.tidy(() => {
    const out = kiln.noGrad(() => model.forward(...inputs));
    return Array.isArray(out) ? out : [out];
  });
  const reference = onnxruntime(path, Object.fromEntries(inputs.map((t, i) => [`input_${i}`, t])));
  expected.forEach((t: Tensor, i: number) => expectClose(t, reference[`output_${i}`]));
  const imported = kiln.onnx.load(path);
  const again = kiln.tidy(() => imported.run(Object.fromEntries(inputs.map((t, i) => [`input_${i}`, t]))));
  expected.forEach((t: Tensor, i: number) => expectClose(again[`output_${i}`], { shape: [...t.shape], data: Array.from(t.dataSync()) }, 1e-5));
  kiln.dispose([...expected, ...Object.values(again)]);
  imported.dispose();
}

class LstmHead extends nn.Module<[Tensor], Tensor> {
  readonly lstm = new nn.LSTM(6, 8, { numLayers: 2 });
  readonly head = new nn.Linear(8, 3);
  forward(x: Tensor): Tensor {
    return this.head.forward(this.lstm.forward(x)[0]);
  }
}

/** conv2d's fused epilogues: a residual with relu, leakyRelu alone (exported as Conv, Add, activation). */
class FusedConvs extends nn.Module<[Tensor], Tensor> {
  readonly w1 = this.registerParameter(kiln.randn([4, 4, 3, 3], { seed: 30 }).mul(0.3));
  readonly w2 = this.registerParameter(kiln.randn([6, 4, 1, 1], { seed: 31 }));
  readonly b2 = this.registerParameter(kiln.randn([6], { seed: 32 }));
  forward(x: Tensor): Tensor {
    const h = kiln.conv2d(x, this.w1, { padding: 1, residual: x, activation: 'relu' });
    return kiln.conv2d(h, this.w2, { bias: this.b2, activation: 'leakyRelu', alpha: 0.2 });
  }
}

/** linear with a residual, with and without a bias (exported as MatMul, Add of the bias, Add of the residual). */
class SkipLinears extends nn.Module<[Tensor], Tensor> {
  readonly w1 = this.registerParameter(kiln.randn([6, 6], { seed: 40 }));
  readonly b1 = this.registerParameter(kiln.randn([6], { seed: 41 }));
  readonly w2 = this.registerParameter(kiln.randn([6, 6], { seed: 42 }));
  forward(x: Tensor): Tensor {
    const h = kiln.linear(x, this.w1, this.b1, x);
    return kiln.linear(h, this.w2, null, h);
  }
}

class BiGru extends nn.Module<[Tensor], Tensor> {
  readonly gru = new nn.GRU(5, 7, { bidirectional: true });
  forward(x: Tensor): Tensor {
    return this.gru.forward(x)[0];
  }
}

forEachBackend(() => {
  describe('onnx.save', () => {
    it('exports an MLP that onnxruntime runs with the same outputs', () => {
      const model = new nn.Sequential(new nn.Linear(8, 16), new nn.GELU(), new nn.Linear(16, 4), new nn.LogSoftmax());
      roundTrip('mlp', model, [kiln.randn([5, 8], { seed: 1 })]);
      model.dispose();
    });

    it('exports a CNN with a ResNet block, BatchNorm (running statistics) and pooling', () => {
      const model = new nn.Sequential(
        new nn.Conv2d(3, 8, 3, { padding: 1 }),
        new nn.BatchNorm2d(8),
        new nn.ReLU(),
        new nn.BasicBlock(8, 16, { stride: 2 }),
        new nn.MaxPool2d(2),
        new nn.GlobalAvgPool2d(),
        new nn.Flatten(),
        new nn.Linear(16, 5),
      );
      // A few training-mode passes move the running statistics away from 0 and 1.
      model.train();
      for (let i = 0; i < 3; i++) kiln.tidy(() => kiln.noGrad(() => model.forward(kiln.randn([4, 3, 12, 12], { seed: 10 + i, mean: 1, std: 2 }))));
      roundTrip('cnn', model, [kiln.randn([2, 3, 12, 12], { seed: 2 })]);
      model.dispose();
    });

    it('exports conv2d with a fused residual and activation as Conv, Add and the activation', () => {
      const model = new FusedConvs();
      roundTrip('fused-convs', model, [kiln.randn([2, 4, 7, 7], { seed: 33 })]);
      model.dispose();
    });

    it('exports linear with a residual as MatMul and Adds, imported back onto one linear call each', () => {
      const model = new SkipLinears();
      roundTrip('skip-linears', model, [kiln.randn([2, 3, 6], { seed: 43 })]);
      const path = join(dir, 'skip-linears.onnx');
      // With a bias the residual Add joins the fused call; without one, a lone Add stays a node.
      const imported = kiln.onnx.load(path);
      expect(imported.fusions.map((f) => f.nodes.length)).toEqual([4, 3]);
      imported.dispose();
      model.dispose();
    });

    it('exports a 2-layer LSTM and a bidirectional GRU', () => {
      const lstm = new LstmHead();
      roundTrip('lstm', lstm, [kiln.randn([3, 7, 6], { seed: 3 })]);
      const gru = new BiGru();
      roundTrip('gru', gru, [kiln.randn([2, 4, 5], { seed: 4 })]);
      lstm.dispose();
      gru.dispose();
    });

    it('exports Transformer encoder (with key padding) and decoder (causal, cross-attention) layers', () => {
      const encoder = new Encoder(3);
      const padding = kiln.tensor([[false, false, false, true, true], [false, false, false, false, false]]);
      roundTrip('encoder', encoder, [kiln.randn([2, 5, 16], { seed: 5 }), padding]);
      const decoder = new Decoder(4);
      roundTrip('decoder', decoder, [kiln.randn([2, 4, 16], { seed: 6 }), kiln.randn([2, 6, 16], { seed: 7 })]);
      encoder.dispose();
      decoder.dispose();
    });

    it('names the op when a model uses one without an ONNX form, and leaves the backend untouched', () => {
      class Scatter extends nn.Module<[Tensor], Tensor> {
        forward(x: Tensor): Tensor {
          return x.scatterAdd(kiln.tensor(new Int32Array([0, 0]), [2], 'int32'), kiln.ones([2, 3]));
        }
      }
      expectThrows(() => kiln.onnx.save(new Scatter(), kiln.zeros([4, 3])), 'onnx.save', 'scatterAdd');
      const y = kiln.tidy(() => kiln.ones([2]).add(1));
      expect(Array.from(y.dataSync())).toEqual([2, 2]);
      y.dispose();
    });
  });
});
