/**
 * Compiled runs of the general (fused) plan (ts/onnx/replay.ts): a Transformer encoder layer
 * with dynamic dims is recorded on its first run for given input dims and replayed while they and
 * the weights stay. The replays match onnxruntime at two sequence lengths (a change of dims
 * records again), ask the backend no result's shape or dtype, keep memory flat, and a weight
 * written in place between replays is used by the next run.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import * as kiln from '../../ts/index.js';
import type { Tensor } from '../../ts/index.js';
import { backend } from '../../ts/engine.js';
import { forEachBackend } from '../backends.js';
import { expectClose, modelBytes, onnxruntime, transformerLayer } from './graphs.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-onnx-replay-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The layer (d 16, 4 heads, feed-forward 32) written to `name`.onnx with `initializers`. */
function write(name: string, nodes: ReturnType<typeof transformerLayer>['nodes'], initializers: Record<string, Tensor>): string {
  const path = join(dir, `${name}.onnx`);
  writeFileSync(path, modelBytes({ nodes, inputs: [['x', ['batch', 'seq', 16]]], outputs: ['y'], initializers }));
  return path;
}

forEachBackend(() => {
  describe('onnx compiled runs of the fused plan', () => {
    it('replays a Transformer layer as onnxruntime runs it at two sequence lengths; a new length records again', () => {
      const { nodes, initializers } = transformerLayer(16, 4, 32, 70);
      const path = write('layer', nodes, initializers);
      kiln.dispose(Object.values(initializers));
      const model = kiln.onnx.load(path);
      expect([...new Set(model.fusions.map((f) => f.pattern))].sort()).toEqual(['Attention', 'Linear', 'LinearGelu', 'LinearGroup']);
      const xs = [5, 7].map((seq, i) => kiln.randn([2, seq, 16], { seed: 80 + i }));
      const wants = xs.map((x) => onnxruntime(path, { x }).y);
      // [which x, whether the run replays]
      for (const [i, replays] of [[0, 0], [0, 1], [0, 1], [1, 0], [1, 1], [0, 0], [0, 1]]) {
        const before = model.nchwc.replays;
        const shape = vi.spyOn(backend().impl, 'shape');
        const dtype = vi.spyOn(backend().impl, 'dtypeOf');
        const y = kiln.noGrad(() => model.forward(xs[i]));
        // A replay's results carry their recorded shapes: the backend is not asked.
        if (replays === 1) expect(shape.mock.calls.length + dtype.mock.calls.length).toBe(0);
        shape.mockRestore();
        dtype.mockRestore();
        expect(model.nchwc.replays - before, `run on x${i}`).toBe(replays);
        expectClose(y, wants[i], 1e-5);
        y.dispose();
      }
      // Replays free every intermediate: memory stays flat.
      const run = () => kiln.noGrad(() => kiln.tidy(() => model.forward(xs[1]).dataSync()));
      run();
      const after = kiln.memory();
      for (let i = 0; i < 3; i++) run();
      expect(kiln.memory()).toEqual(after);
      kiln.dispose(xs);
      model.dispose();
    });

    it('uses a weight written in place between replays (a member of the stacked Q/K/V product, the output Linear)', () => {
      const { nodes, initializers } = transformerLayer(16, 4, 32, 90);
      const path = write('written', nodes, initializers);
      const model = kiln.onnx.load(path);
      const x = kiln.randn([1, 6, 16], { seed: 99 });
      const first = () => kiln.noGrad(() => model.forward(x));
      kiln.dispose([first(), first()]);
      expect(model.nchwc.replays).toBe(1);
      // The reference: onnxruntime on a file with the new weights.
      const changed = { ...initializers, Wq: initializers.Wq.mul(-0.5), Wo: initializers.Wo.mul(2) };
      const want = onnxruntime(write('written-new', nodes, changed), { x }).y;
      const state = model.stateDict();
      kiln.noGrad(() => kiln.tidy(() => ['Wq', 'Wo'].forEach((name) => kiln.assign(state[name], changed[name]))));
      for (const replays of [1, 2]) {
        const y = first();
        expect(model.nchwc.replays).toBe(replays);
        expectClose(y, want, 1e-5);
        y.dispose();
      }
      kiln.dispose([x, changed.Wq, changed.Wo, ...Object.values(initializers)]);
      model.dispose();
    });

    it('records again when gradients are switched on: the Q/K/V weights get theirs (a noGrad replay keeps their stacked copy), in eval and training mode', () => {
      const { nodes, initializers } = transformerLayer(16, 4, 32, 110);
      const path = write('gradients', nodes, initializers);
      kiln.dispose(Object.values(initializers));
      const model = kiln.onnx.load(path);
      const x = kiln.randn([1, 4, 16], { seed: 111 });
      const state = model.stateDict();
      const weights = ['Wq', 'Wk', 'Wo', 'W1'].map((name) => state[name]);
      const gradientsOf = () => kiln.tidy(() => kiln.gradients(model.forward(x).square().sum(), weights));
      for (const training of [false, true]) {
        model.train(training);
        kiln.dispose([0, 1].map(() => kiln.noGrad(() => model.forward(x))));
        // Twice with gradients: recorded, then replayed; each time every weight gets a gradient, the same one.
        const [recorded, replayed] = [gradientsOf(), gradientsOf()];
        for (const [i, g] of recorded.entries()) {
          expect(g, `${training ? 'training' : 'eval'}: ${['Wq', 'Wk', 'Wo', 'W1'][i]}`).not.toBeNull();
          expectClose(replayed[i]!, { shape: [...g!.shape], data: Array.from(g!.dataSync()) }, 1e-6);
        }
        kiln.dispose([...recorded, ...replayed] as Tensor[]);
      }
      // The gradients' reference: Wq's through the unfused graph (fusions decline in training), in training mode above;
      // eval mode's equal it (the layer has no Dropout or BatchNormalization).
      model.train(false);
      const evalGradient = gradientsOf()[0]!;
      model.train(true);
      const trainGradient = gradientsOf()[0]!;
      expectClose(evalGradient, { shape: [...trainGradient.shape], data: Array.from(trainGradient.dataSync()) }, 1e-5);
      kiln.dispose([x, evalGradient, trainGradient]);
      model.dispose();
    });
  });
});
