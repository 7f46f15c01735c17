/**
 * kiln.onnx.load: an imported model runs on the active backend and matches onnxruntime, its
 * initializers are parameters (BatchNormalization's statistics buffers) named as in the file,
 * it fine-tunes on MNIST with fit (accuracy rises; freeze() keeps frozen layers fixed), dynamic
 * batch dims take any size, external data files load, and bad models or inputs get clear errors
 * (every unsupported op listed before anything runs).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as kiln from '../../ts/index.js';
import { encodeModel } from '../../ts/onnx/proto.js';
import { tensorToProto } from '../../ts/onnx/tensors.js';
import { forEachBackend, heavyIt } from '../backends.js';
import { expectThrows } from '../helpers.js';
import { modelBytes } from './graphs.js';
import { pythonBin } from './python.js';

const fixture = fileURLToPath(new URL('./fixtures/small_cnn.py', import.meta.url));
let dir: string;
let cnnPath: string;
let reference: { input: number[]; output: number[] };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'kiln-onnx-'));
  cnnPath = join(dir, 'small_cnn.onnx');
  const r = spawnSync(pythonBin, [fixture, cnnPath, join(dir, 'reference.json')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${pythonBin} small_cnn.py failed (npm test installs onnx and onnxruntime into the venv):\n${r.stderr}`);
  reference = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** MNIST images [n, 1, 28, 28] scaled to [0, 1] and labels, from `offset`. */
function mnistSlice(images: Uint8Array, labels: Uint8Array, offset: number, n: number): { x: Float32Array; y: Int32Array } {
  const x = Float32Array.from(images.subarray(offset * 784, (offset + n) * 784), (v) => v / 255);
  return { x, y: Int32Array.from(labels.subarray(offset, offset + n)) };
}

forEachBackend((backend) => {
  describe('onnx.load', () => {
    it('runs a CNN (Conv, BatchNormalization, MaxPool, Gemm) and matches onnxruntime', () => {
      const model = kiln.onnx.load(cnnPath);
      expect(model.inputNames).toEqual(['input']);
      expect(model.outputNames).toEqual(['logits']);
      expect(model.inputs[0].shape).toEqual(['N', 1, 28, 28]);
      const y = kiln.tidy(() => model.forward(kiln.tensor(Float32Array.from(reference.input), [3, 1, 28, 28])));
      expect(y.shape).toEqual([3, 10]);
      const got = y.dataSync();
      reference.output.forEach((v, i) => expect(Math.abs(got[i] - v)).toBeLessThan(1e-4 + 1e-4 * Math.abs(v)));
      // run() names the outputs; a dynamic batch dim takes any size.
      const out = kiln.tidy(() => model.run({ input: kiln.zeros([5, 1, 28, 28]) }));
      expect(out.logits.shape).toEqual([5, 10]);
      kiln.dispose([y, out.logits]);
      model.dispose();
    });

    it('makes initializers parameters (statistics as buffers) under their ONNX names', () => {
      const model = kiln.onnx.load(readFileSync(cnnPath));
      expect(model.namedParameters().map(([n]) => n)).toEqual(['conv1.weight', 'conv1.bias', 'bn1.weight', 'bn1.bias', 'conv2.weight', 'conv2.bias', 'fc.weight', 'fc.bias']);
      expect(model.namedBuffers().map(([n]) => n)).toEqual(['bn1.running_mean', 'bn1.running_var']);
      expect(model.numParameters()).toBe(8 * 9 + 8 + 16 + 16 * 8 * 9 + 16 + 7840 + 10);
      expect(Object.keys(model.stateDict())).toHaveLength(10);
      expect(model.parameters().every((p) => p.requiresGrad)).toBe(true);
      expect(model.freeze().parameters().some((p) => p.requiresGrad)).toBe(false);
      model.dispose();
    });

    heavyIt(backend)('fine-tunes on MNIST with fit: accuracy rises, frozen layers stay fixed', async () => {
      vi.spyOn(console, 'log').mockImplementation(() => {});
      const mnist = kiln.data.loadMnist();
      const train = mnistSlice(mnist.trainImages, mnist.trainLabels, 0, 2048);
      const test = mnistSlice(mnist.testImages, mnist.testLabels, 0, 1000);
      const model = kiln.onnx.load(cnnPath);
      const accuracy = (): number => kiln.tidy(() => {
        model.eval();
        const pred = kiln.noGrad(() => model.forward(kiln.tensor(test.x, [1000, 1, 28, 28]))).argmax(1).dataSync();
        return pred.reduce((n, p, i) => n + (p === test.y[i] ? 1 : 0), 0) / 1000;
      });
      const before = accuracy();
      // Fine-tune everything but conv1 (frozen, as one fine-tunes a pretrained backbone's first layers).
      const conv1 = model.stateDict()['conv1.weight'];
      conv1.setRequiresGrad(false);
      const conv1Before = conv1.dataSync();
      const batches = function* () {
        for (let i = 0; i < 2048; i += 64) {
          yield { x: kiln.tensor(train.x.subarray(i * 784, (i + 64) * 784), [64, 1, 28, 28]), y: kiln.tensor(train.y.subarray(i, i + 64), [64], 'int32') };
        }
      };
      const trainable = model.parameters().filter((p) => p.requiresGrad);
      const optimizer = new kiln.optim.Adam(trainable, { lr: 2e-3 });
      await kiln.fit(model, { [Symbol.iterator]: batches, length: 32 }, { epochs: 2, loss: (o, y) => kiln.crossEntropy(o, y), optimizer, verbose: 0 });
      const after = accuracy();
      expect(before).toBeLessThan(0.4);
      expect(after).toBeGreaterThan(0.85);
      expect(Array.from(conv1.dataSync())).toEqual(Array.from(conv1Before));
      optimizer.dispose();
      model.dispose();
      vi.restoreAllMocks();
    }, 300_000);

    it('frees every intermediate as it goes: runs outside tidy leave memory() flat', () => {
      const model = kiln.onnx.load(cnnPath);
      const x = kiln.zeros([2, 1, 28, 28]);
      const before = kiln.memory().numTensors;
      for (let i = 0; i < 5; i++) model.forward(x).dispose();
      expect(kiln.memory().numTensors).toBe(before);
      kiln.dispose(x);
      model.dispose();
    });

    it('lists every unsupported op with its node and the opset before running', () => {
      const bytes = modelBytes({
        nodes: [
          { opType: 'Relu', input: ['x'], output: ['a'], name: 'r' },
          { opType: 'NonMaxSuppression', input: ['a'], output: ['b'], name: 'nms' },
          { opType: 'Einsum', input: ['b'], output: ['y'], name: 'mix' },
        ],
        inputs: [['x', [2]]],
        outputs: ['y'],
      }, 15);
      expectThrows(() => kiln.onnx.load(bytes), 'onnx.load', 'NonMaxSuppression', "node 'nms'", 'Einsum', "node 'mix'", 'opset 15');
      expect(kiln.onnx.check(bytes).unsupported).toEqual(['Einsum', 'NonMaxSuppression']);
    });

    it('rejects bad bytes, missing inputs and wrong shapes with clear errors', () => {
      expectThrows(() => kiln.onnx.load(new Uint8Array([1, 2, 3, 250, 255])), 'onnx.load');
      expectThrows(() => kiln.onnx.load(join(dir, 'missing.onnx')), 'onnx.load', 'missing.onnx');
      const model = kiln.onnx.load(cnnPath);
      expectThrows(() => model.run({}), "missing input 'input'");
      expectThrows(() => kiln.tidy(() => model.forward(kiln.zeros([2, 3, 28, 28]))), "input 'input'", '[N, 1, 28, 28]', '[2, 3, 28, 28]');
      expectThrows(() => model.forward(), 'takes 1 input');
      model.dispose();
    });

    it('runs dynamic batch and sequence dims at any size (a Shape -> Gather -> Reshape chain included)', () => {
      // y = reshape(x @ w, [batch, seq * 2]): the target shape is computed from x's runtime shape.
      const bytes = modelBytes({
        nodes: [
          { opType: 'MatMul', input: ['x', 'w'], output: ['h'], name: 'proj' },
          { opType: 'Shape', input: ['x'], output: ['s'], name: 'shape' },
          { opType: 'Gather', input: ['s', 'zero'], output: ['b'], name: 'batch', attribute: [{ name: 'axis', type: 2, i: 0 }] },
          { opType: 'Unsqueeze', input: ['b', 'zero1'], output: ['b1'], name: 'b1' },
          { opType: 'Concat', input: ['b1', 'minus1'], output: ['target'], name: 'target', attribute: [{ name: 'axis', type: 2, i: 0 }] },
          { opType: 'Reshape', input: ['h', 'target'], output: ['y'], name: 'flat' },
        ],
        inputs: [['x', ['batch', 'seq', 3]]],
        outputs: ['y'],
        initializers: { w: kiln.tensor([[1, 0], [0, 1], [1, 1]]), zero: kiln.tensor(new Int32Array([0]), [], 'int32'), zero1: kiln.tensor(new Int32Array([0]), [1], 'int32'), minus1: kiln.tensor(new Int32Array([-1]), [1], 'int32') },
      });
      const model = kiln.onnx.load(bytes);
      expect(model.inputs[0].shape).toEqual(['batch', 'seq', 3]);
      for (const [batch, seq] of [[1, 1], [2, 5], [3, 7]]) {
        const y = kiln.tidy(() => model.forward(kiln.ones([batch, seq, 3])));
        expect(y.shape).toEqual([batch, seq * 2]);
        expect(Array.from(y.dataSync()).every((v) => v === 2)).toBe(true); // ones @ w: each column sums to 2
        y.dispose();
      }
      model.dispose();
    });

    it('names the node and the input shapes when an op fails at run time', () => {
      const bytes = modelBytes({ nodes: [{ opType: 'MatMul', input: ['a', 'b'], output: ['y'], name: 'proj' }], inputs: [['a', ['n', 'k']], ['b', ['k2', 'm']]], outputs: ['y'] });
      const model = kiln.onnx.load(bytes);
      expectThrows(() => kiln.tidy(() => model.run({ a: kiln.zeros([2, 3]), b: kiln.zeros([4, 5]) })), "MatMul node 'proj'", '[2, 3]', '[4, 5]');
      model.dispose();
    });

    it('reads initializers from external data files beside the model', () => {
      const w = kiln.tensor([[1, 2], [3, 4]]);
      const proto = tensorToProto(w, 'w');
      writeFileSync(join(dir, 'weights.bin'), Buffer.concat([Buffer.alloc(8), Buffer.from(proto.rawData!)]));
      const external = { ...proto, rawData: undefined, dataLocation: 1, externalData: [{ key: 'location', value: 'weights.bin' }, { key: 'offset', value: '8' }, { key: 'length', value: '16' }] };
      const bytes = encodeModel({
        irVersion: 8,
        opsetImport: [{ domain: '', version: 17 }],
        graph: {
          node: [{ opType: 'MatMul', input: ['x', 'w'], output: ['y'] }],
          input: [{ name: 'x', type: { tensorType: { elemType: 1 } } }],
          output: [{ name: 'y', type: { tensorType: { elemType: 1 } } }],
          initializer: [external],
        },
      });
      writeFileSync(join(dir, 'external.onnx'), bytes);
      const model = kiln.onnx.load(join(dir, 'external.onnx'));
      const y = kiln.tidy(() => model.forward(kiln.tensor([[1, 1]])));
      expect(Array.from(y.dataSync())).toEqual([4, 6]);
      expectThrows(() => kiln.onnx.load(bytes), 'external file', 'weights.bin');
      // A location leaving the model's directory is refused (a crafted model must not read other files).
      const outside = { ...external, externalData: [{ key: 'location', value: '../../etc/passwd' }] };
      writeFileSync(join(dir, 'escape.onnx'), encodeModel({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], graph: { node: [], initializer: [outside] } }));
      expectThrows(() => kiln.onnx.load(join(dir, 'escape.onnx')), 'outside the model');
      kiln.dispose([w, y]);
      model.dispose();
    });
  });
});
