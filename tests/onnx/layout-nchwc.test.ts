/**
 * The NCHWc layout pass (ts/onnx/layout/): on the native backend with AVX-512, in inference, an
 * imported CNN keeps its activations channel-blocked between convolutions; its outputs equal
 * onnxruntime's and the pass-off run's (KILN_ONNX_NCHWC=off) within float rounding: a ResNet-style
 * graph (a 3-channel stem read plain and written blocked, MaxPool, a bottleneck with a downsampling branch, an Add and a
 * Relu of two blocked values, a blocked value read by Reshape and returned), a SqueezeNet-style one
 * (fire modules as blocked ConvConcat, a blocked MaxPool, a 1000-channel conv: a partial last block, then
 * GlobalAveragePool and Flatten), and the onnx wheel's light ResNet-50 and SqueezeNet. Training
 * runs the plain graph and inference after fit uses the new weights; a fused node that declines
 * runs its original nodes on plain tensors; memory stays flat over runs; other backends never take
 * the pass.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import * as kiln from '../../ts/index.js';
import { backend as activeBackend } from '../../ts/engine.js';
import { forEachBackend } from '../backends.js';
import { expectClose, modelBytes, onnxruntime } from './graphs.js';
import { pythonBin } from './python.js';
// @ts-expect-error: a plain .mjs helper shared with scripts/onnx-conformance.mjs
import { wheelDataDir } from '../../scripts/onnx-conformance-lib.mjs';

const dir = mkdtempSync(join(tmpdir(), 'kiln-onnx-nchwc-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => delete process.env.KILN_ONNX_NCHWC);

const ints = (name: string, v: number[]) => ({ name, type: 7, ints: v });
const conv = (name: string, input: string[], output: string, k: number, stride = 1) => ({
  opType: 'Conv', input, output: [output], name,
  attribute: [ints('pads', Array(4).fill(k >> 1)), ints('strides', [stride, stride]), ints('kernel_shape', [k, k])],
});
const weights = (shapes: Record<string, number[]>, seed: number) =>
  Object.fromEntries(Object.entries(shapes).map(([name, shape], i) => [name, kiln.randn(shape, { seed: seed + i }).mul(shape.length === 4 ? Math.sqrt(2 / (shape[1] * shape[2] * shape[3])) : 0.3)]));
/** BatchNormalization parameters of `c` channels: scale, shift, mean, variance (positive). */
const norm = (prefix: string, c: number, seed: number) => ({
  [`${prefix}_s`]: kiln.randu([c], { seed, low: 0.5, high: 1.5 }),
  [`${prefix}_b`]: kiln.randn([c], { seed: seed + 1 }).mul(0.1),
  [`${prefix}_m`]: kiln.randn([c], { seed: seed + 2 }).mul(0.1),
  [`${prefix}_v`]: kiln.randu([c], { seed: seed + 3, low: 0.5, high: 1.5 }),
});
const bn = (name: string, input: string, output: string) => ({ opType: 'BatchNormalization', input: [input, `${name}_s`, `${name}_b`, `${name}_m`, `${name}_v`], output: [output], name });
const relu = (name: string, input: string, output: string) => ({ opType: 'Relu', input: [input], output: [output], name });

/** x [n, 3, 16, 16] -> a ResNet-style stem, bottleneck and head; outputs y [n, 40] and feat (a blocked value through Reshape). */
function residualNet(): string {
  const path = join(dir, 'residual.onnx');
  kiln.tidy(() => writeFileSync(path, modelBytes({
    nodes: [
      conv('stem', ['x', 'w0'], 'c0', 3), bn('bn0', 'c0', 'n0'), relu('r0', 'n0', 'a0'),
      { opType: 'MaxPool', input: ['a0'], output: ['p0'], name: 'pool', attribute: [ints('kernel_shape', [2, 2]), ints('strides', [2, 2])] },
      conv('down', ['p0', 'wd'], 'cd', 1, 2), bn('bnd', 'cd', 'nd'),
      conv('b1', ['p0', 'w1', 'bias1'], 'c1', 1), bn('bn1', 'c1', 'n1'), relu('r1', 'n1', 'a1'),
      conv('b2', ['a1', 'w2'], 'c2', 3, 2), bn('bn2', 'c2', 'n2'), relu('r2', 'n2', 'a2'),
      conv('b3', ['a2', 'w3'], 'c3', 1), bn('bn3', 'c3', 'n3'),
      { opType: 'Add', input: ['n3', 'nd'], output: ['s3'], name: 'add3' }, relu('r3', 's3', 'a3'),
      // Two convolutions of a3 and a plain Add and Relu of their (blocked) outputs.
      conv('c4', ['a3', 'w4', 'bias4'], 'c4', 3), relu('r4', 'c4', 'a4'),
      conv('c5', ['a3', 'w5'], 'c5', 1), relu('r5', 'c5', 'a5'),
      { opType: 'Add', input: ['a4', 'a5'], output: ['s6'], name: 'add6' }, relu('r6', 's6', 'a6'),
      { opType: 'Reshape', input: ['a6', 'flat'], output: ['feat'], name: 'reshape' },
      { opType: 'GlobalAveragePool', input: ['a6'], output: ['g'], name: 'gap' },
      { opType: 'Flatten', input: ['g'], output: ['y'], name: 'flatten' },
    ],
    inputs: [['x', ['n', 3, 16, 16]]],
    outputs: ['y', 'feat'],
    initializers: {
      ...weights({ w0: [16, 3, 3, 3], wd: [32, 16, 1, 1], w1: [24, 16, 1, 1], bias1: [24], w2: [24, 24, 3, 3], w3: [32, 24, 1, 1], w4: [40, 32, 3, 3], bias4: [40], w5: [40, 32, 1, 1] }, 1),
      ...norm('bn0', 16, 20), ...norm('bnd', 32, 30), ...norm('bn1', 24, 40), ...norm('bn2', 24, 50), ...norm('bn3', 32, 60),
      flat: kiln.tensor([0, -1], [2], 'int32'),
    },
  })));
  return path;
}

/** x [n, 3, 24, 24] -> a SqueezeNet-style stem, two fire modules, Dropout, a 1000-channel conv, GlobalAveragePool, Flatten. */
function fireNet(): string {
  const path = join(dir, 'fire.onnx');
  const fire = (i: number, input: string, output: string) => [
    conv(`sq${i}`, [input, `ws${i}`, `bs${i}`], `cs${i}`, 1), relu(`rs${i}`, `cs${i}`, `s${i}`),
    conv(`e1_${i}`, [`s${i}`, `we1_${i}`, `be1_${i}`], `ce1_${i}`, 1), relu(`re1_${i}`, `ce1_${i}`, `e1o${i}`),
    conv(`e3_${i}`, [`s${i}`, `we3_${i}`, `be3_${i}`], `ce3_${i}`, 3), relu(`re3_${i}`, `ce3_${i}`, `e3o${i}`),
    { opType: 'Concat', input: [`e1o${i}`, `e3o${i}`], output: [output], name: `cat${i}`, attribute: [{ name: 'axis', type: 2, i: 1 }] },
  ];
  kiln.tidy(() => writeFileSync(path, modelBytes({
    nodes: [
      conv('stem', ['x', 'w0', 'b0'], 'c0', 3, 2), relu('r0', 'c0', 'a0'),
      { opType: 'MaxPool', input: ['a0'], output: ['p0'], name: 'pool0', attribute: [ints('kernel_shape', [3, 3]), ints('strides', [2, 2])] },
      ...fire(1, 'p0', 'f1'),
      { opType: 'MaxPool', input: ['f1'], output: ['p1'], name: 'pool1', attribute: [ints('kernel_shape', [2, 2]), ints('strides', [1, 1])] },
      ...fire(2, 'p1', 'f2'),
      { opType: 'Dropout', input: ['f2'], output: ['d2'], name: 'drop' },
      conv('head', ['d2', 'wh', 'bh'], 'ch', 1), relu('rh', 'ch', 'ah'),
      { opType: 'GlobalAveragePool', input: ['ah'], output: ['g'], name: 'gap' },
      { opType: 'Flatten', input: ['g'], output: ['y'], name: 'flatten' },
    ],
    inputs: [['x', ['n', 3, 24, 24]]],
    outputs: ['y'],
    initializers: weights({
      w0: [32, 3, 3, 3], b0: [32],
      ws1: [16, 32, 1, 1], bs1: [16], we1_1: [32, 16, 1, 1], be1_1: [32], we3_1: [32, 16, 3, 3], be3_1: [32],
      ws2: [24, 64, 1, 1], bs2: [24], we1_2: [48, 24, 1, 1], be1_2: [48], we3_2: [48, 24, 3, 3], be3_2: [48],
      wh: [1000, 96, 1, 1], bh: [1000],
    }, 100),
  })));
  return path;
}

/**
 * x [n, 16, 6, 6] -> Conv + Add of a broadcast [1, 16, 1, 1] addend + Relu (fused, but its fast
 * path declines: the blocked node runs the original nodes on plain tensors) -> Conv -> y, a graph
 * output produced blocked.
 */
function broadcastNet(): string {
  const path = join(dir, 'broadcast.onnx');
  kiln.tidy(() => writeFileSync(path, modelBytes({
    nodes: [
      conv('ca', ['x', 'wa'], 'c1', 3), { opType: 'Add', input: ['c1', 'shift'], output: ['s1'], name: 'add' }, relu('ra', 's1', 'a1'),
      conv('cb', ['a1', 'wb', 'bb'], 'y', 1),
    ],
    inputs: [['x', ['n', 16, 6, 6]]],
    outputs: ['y'],
    initializers: weights({ wa: [16, 16, 3, 3], shift: [1, 16, 1, 1], wb: [20, 16, 1, 1], bb: [20] }, 200),
  })));
  return path;
}

/** x [n, 3, 8, 8] -> a 3-channel conv whose output only plain nodes read (a Flatten), beside a 16-channel conv: the stem must stay plain. */
function plainReadStemNet(): string {
  const path = join(dir, 'plain-stem.onnx');
  kiln.tidy(() => writeFileSync(path, modelBytes({
    nodes: [
      conv('stem', ['x', 'w0'], 'c0', 3), relu('r0', 'c0', 'a0'),
      { opType: 'Flatten', input: ['a0'], output: ['y'], name: 'flatten' },
      conv('other', ['a0', 'w1'], 'z', 1),
    ],
    inputs: [['x', ['n', 3, 8, 8]]],
    outputs: ['y', 'z'],
    initializers: weights({ w0: [16, 3, 3, 3], w1: [20, 16, 1, 1] }, 300),
  })));
  return path;
}

/** The outputs of `model` on `x` with the pass on or off, in inference (noGrad). */
function infer(model: ReturnType<typeof kiln.onnx.load>, x: kiln.Tensor, pass: 'on' | 'off'): Record<string, kiln.Tensor> {
  if (pass === 'off') process.env.KILN_ONNX_NCHWC = 'off';
  try {
    return kiln.noGrad(() => model.run({ x }));
  } finally {
    delete process.env.KILN_ONNX_NCHWC;
  }
}

const lightDir = (): string => join(wheelDataDir(pythonBin), 'light');

forEachBackend((backend) => {
  // The pass runs where it pays: the native backend on an AVX-512 CPU (this machine's).
  const applies = backend === 'native' && kiln.simdLevel() === 'avx512';

  describe('onnx NCHWc layout pass', () => {
    it('runs a ResNet-style graph blocked from the stem on (its 3 channels read plain), equal to onnxruntime and to the pass-off run', () => {
      const path = residualNet();
      const model = kiln.onnx.load(path);
      // The 3-channel stem reads its input plain and writes NCHWc, so the MaxPool after it runs blocked; every other convolution,
      // and the Add of two blocked values and the Relu after it, run blocked.
      // (The downsampling branch, first in graph order, takes the Add: its addend is b3's output.)
      expect(model.nchwc.nodes).toEqual(['stem+bn0+r0', 'pool', 'b1+bn1+r1', 'b2+bn2+r2', 'b3+bn3', 'down+bnd+add3+r3', 'c4+r4', 'c5+r5', 'add6', 'r6', 'gap']);
      for (const n of [1, 2]) {
        const x = kiln.randn([n, 3, 16, 16], { seed: n });
        const want = onnxruntime(path, { x });
        const before = model.nchwc.runs;
        const impl = activeBackend().impl;
        const spies = (['conv2d', 'conv2dNchwc', 'avgPool2dNchwc'] as const).map((name) => vi.spyOn(impl, name));
        const on = infer(model, x, 'on');
        expect(model.nchwc.runs - before).toBe(applies ? 1 : 0);
        // Blocked: the stem and the six others on the blocked kernel (none declined to the plain nodes), the GlobalAveragePool blocked.
        expect(spies.map((s) => s.mock.calls.length)).toEqual(applies ? [0, 7, 1] : [7, 0, 0]);
        vi.restoreAllMocks();
        const off = infer(model, x, 'off');
        expect(model.nchwc.runs - before).toBe(applies ? 1 : 0);
        // c4 (3x3, 32 -> 40 channels: a partial block) by Winograd in NCHWc, forced (4x4 images have too few tiles for the rule).
        process.env.KILN_CONV_PATH = 'winograd';
        const winograd = kiln.noGrad(() => model.run({ x }));
        delete process.env.KILN_CONV_PATH;
        for (const name of ['y', 'feat']) {
          expectClose(on[name], want[name], 1e-4);
          expectClose(on[name], { shape: [...off[name].shape], data: Array.from(off[name].dataSync()) }, 1e-5);
          expectClose(winograd[name], want[name], 1e-4);
        }
        kiln.dispose([x, ...Object.values(on), ...Object.values(off), ...Object.values(winograd)]);
      }
      model.dispose();
    });

    it('runs fire modules as blocked ConvConcats and a 1000-channel conv (a partial block) into GlobalAveragePool, as onnxruntime does', () => {
      const path = fireNet();
      const model = kiln.onnx.load(path);
      expect(model.nchwc.nodes).toEqual(['stem+r0', 'pool0', 'sq1+rs1', 'e1_1+re1_1+e3_1+re3_1+cat1', 'pool1', 'sq2+rs2', 'e1_2+re1_2+e3_2+re3_2+cat2', 'drop', 'head+rh', 'gap']);
      const x = kiln.randn([2, 3, 24, 24], { seed: 5 });
      const want = onnxruntime(path, { x }).y;
      const impl = activeBackend().impl;
      const spies = (['conv2d', 'conv2dConcat', 'conv2dNchwc', 'conv2dNchwcConcat', 'avgPool2dNchwc'] as const).map((name) => vi.spyOn(impl, name));
      const on = infer(model, x, 'on').y;
      // Blocked: the stem (reading its 3 channels plain), the squeezes and the head on conv2dNchwc, the expands on conv2dNchwcConcat, the GlobalAveragePool of the 1000 channels blocked.
      expect(spies.map((s) => s.mock.calls.length)).toEqual(applies ? [0, 0, 4, 2, 1] : [4, 2, 0, 0, 0]);
      vi.restoreAllMocks();
      const off = infer(model, x, 'off').y;
      expect(model.nchwc.runs).toBe(applies ? 1 : 0);
      expectClose(on, want, 1e-4);
      expectClose(on, { shape: [...off.shape], data: Array.from(off.dataSync()) }, 1e-5);
      // The 3x3 expands by Winograd in NCHWc (forced: these 5x5 and 4x4 images have too few tiles for the rule).
      process.env.KILN_CONV_PATH = 'winograd';
      const winograd = kiln.noGrad(() => model.run({ x })).y;
      delete process.env.KILN_CONV_PATH;
      expectClose(winograd, want, 1e-4);
      kiln.dispose([x, on, off, winograd]);
      model.dispose();
    });

    it('runs a stem blocked only when a blocked node reads its output, and equals onnxruntime either way', () => {
      const path = plainReadStemNet();
      const model = kiln.onnx.load(path);
      // 'other' reads the stem's output blocked, so the stem writes NCHWc (its Flatten reads it back plain).
      expect(model.nchwc.nodes).toEqual(['stem+r0', 'other']);
      const alone = join(dir, 'stem-alone.onnx');
      kiln.tidy(() => writeFileSync(alone, modelBytes({
        nodes: [conv('stem', ['x', 'w0'], 'c0', 3), relu('r0', 'c0', 'a0'), { opType: 'Flatten', input: ['a0'], output: ['y'], name: 'flatten' }],
        inputs: [['x', ['n', 3, 8, 8]]],
        outputs: ['y'],
        initializers: weights({ w0: [16, 3, 3, 3] }, 300),
      })));
      const single = kiln.onnx.load(alone);
      // Nothing blocked reads it: no plan (a blocked stem would only add a reorder back).
      expect(single.nchwc.nodes).toEqual([]);
      const x = kiln.randn([2, 3, 8, 8], { seed: 31 });
      const want = onnxruntime(path, { x });
      const on = infer(model, x, 'on');
      for (const name of ['y', 'z']) expectClose(on[name], want[name], 1e-4);
      const y = infer(single, x, 'on').y;
      expectClose(y, onnxruntime(alone, { x }).y, 1e-4);
      kiln.dispose([x, y, ...Object.values(on)]);
      model.dispose();
      single.dispose();
    });

    it('runs a fused node whose fast path declines on plain tensors inside the blocked plan, and returns a blocked graph output plain', () => {
      const path = broadcastNet();
      const model = kiln.onnx.load(path);
      expect(model.nchwc.nodes).toEqual(['ca+add+ra', 'cb']);
      const x = kiln.randn([2, 16, 6, 6], { seed: 21 });
      const want = onnxruntime(path, { x }).y;
      const impl = activeBackend().impl;
      const [plainConv, blockedConv] = [vi.spyOn(impl, 'conv2d'), vi.spyOn(impl, 'conv2dNchwc')];
      const on = infer(model, x, 'on').y;
      // The broadcast Add: the first convolution runs its original nodes (plain conv2d), the second blocked.
      expect([plainConv.mock.calls.length, blockedConv.mock.calls.length]).toEqual(applies ? [1, 1] : [2, 0]);
      vi.restoreAllMocks();
      const off = infer(model, x, 'off').y;
      expect(on.shape).toEqual([2, 20, 6, 6]);
      expectClose(on, want, 1e-4);
      expectClose(on, { shape: [...off.shape], data: Array.from(off.dataSync()) }, 1e-5);
      kiln.dispose([x, on, off]);
      model.dispose();
    });

    it('replays the plan compiled from its first run while input dims and weights stay, and compiles it again when they change', () => {
      for (const [path, size, outputs] of [[fireNet(), 24, ['y']], [residualNet(), 16, ['y', 'feat']]] as const) {
        const model = kiln.onnx.load(path);
        const xs = [1, 2].map((n) => kiln.randn([n, 3, size, size], { seed: 20 + n }));
        const wants = xs.map((x) => onnxruntime(path, { x }));
        // [batch index, whether the run replays]: a run with new dims records, the next one replays.
        for (const [i, replays] of [[0, 0], [0, 1], [0, 1], [1, 0], [1, 1], [0, 0], [0, 1]]) {
          const before = model.nchwc.replays;
          const got = infer(model, xs[i], 'on');
          expect(model.nchwc.replays - before, `${path} run of batch ${i + 1}`).toBe(replays);
          for (const name of outputs) expectClose(got[name], wants[i][name], 1e-4);
          kiln.dispose(Object.values(got));
        }
        // Replays free every intermediate: memory stays flat.
        const run = () => kiln.noGrad(() => kiln.tidy(() => model.forward(xs[0]).dataSync()));
        run();
        const after = kiln.memory();
        for (let i = 0; i < 3; i++) run();
        expect(kiln.memory()).toEqual(after);
        // A weight written in place between replays: the next run uses it (the compiled run is dropped with the packed filters).
        const weights = Object.entries(model.stateDict()).filter(([, t]) => t.shape.length === 4 && t.shape[1] >= 16);
        kiln.noGrad(() => kiln.tidy(() => weights.forEach(([, w]) => kiln.assign(w, w.mul(-0.5)))));
        const replays = model.nchwc.replays;
        const on = infer(model, xs[0], 'on');
        expect(model.nchwc.replays).toBe(replays);
        const off = infer(model, xs[0], 'off');
        for (const name of outputs) {
          expect(Math.max(...Array.from(on[name].dataSync(), (v, j) => Math.abs(v - wants[0][name].data[j])))).toBeGreaterThan(1e-3);
          expectClose(on[name], { shape: [...off[name].shape], data: Array.from(off[name].dataSync()) }, 1e-5);
        }
        kiln.dispose([...xs, ...Object.values(on), ...Object.values(off)]);
        model.dispose();
      }
    });

    it('stops replaying when a plain node makes a shape from values (a Reshape to a shape given as an input), and returns an initializer output', () => {
      const path = join(dir, 'reshape-input.onnx');
      kiln.tidy(() => writeFileSync(path, modelBytes({
        nodes: [{ opType: 'Reshape', input: ['x', 'target'], output: ['r'], name: 'reshape' }, conv('c', ['r', 'w', 'b'], 'y', 1)],
        inputs: [['x', ['n', 16, 4, 4]], ['target', [4], 7]],
        // An initializer no node reads as a graph output too.
        outputs: ['y', 'extra'],
        initializers: weights({ w: [20, 16, 1, 1], b: [20], extra: [3] }, 400),
      })));
      const model = kiln.onnx.load(path);
      const x = kiln.randn([1, 16, 4, 4], { seed: 31 });
      const targets = [[1, 16, 4, 4], [1, 16, 2, 8]].map((dims) => kiln.tensor(dims, [4], 'int32'));
      // [target, whether the run replays]: the third run's Reshape gives another shape from the same input dims.
      for (const [i, replays] of [[0, 0], [0, 1], [1, 0], [0, 0]]) {
        const before = model.nchwc.replays;
        const { y, extra } = kiln.noGrad(() => model.run({ x, target: targets[i] }));
        expect(model.nchwc.replays - before).toBe(replays);
        expect(extra).toBe(model.stateDict().extra);
        // The reference: the plain graph (onnxruntime's runner takes no int64 input from here).
        process.env.KILN_ONNX_NCHWC = 'off';
        const off = kiln.noGrad(() => model.run({ x, target: targets[i] })).y;
        delete process.env.KILN_ONNX_NCHWC;
        expect(y.shape).toEqual([1, 20, ...targets[i].dataSync().slice(2)]);
        expectClose(y, { shape: [...off.shape], data: Array.from(off.dataSync()) }, 1e-5);
        kiln.dispose([y, off]);
      }
      kiln.dispose([x, ...targets]);
      model.dispose();
    });

    it('keeps memory flat over repeated runs (packed filters are made once and freed with the model)', () => {
      const path = residualNet();
      const start = kiln.memory();
      const model = kiln.onnx.load(path);
      const x = kiln.randn([1, 3, 16, 16], { seed: 9 });
      const run = () => kiln.noGrad(() => kiln.tidy(() => model.forward(x).dataSync()));
      run();
      const after = kiln.memory();
      for (let i = 0; i < 5; i++) run();
      expect(kiln.memory()).toEqual(after);
      x.dispose();
      model.dispose();
      expect(kiln.memory().numTensors).toBe(start.numTensors);
    });

    for (const path of ['direct tiles', 'winograd'] as const) {
      it(`packs the filters again after a weight is written in place in eval mode (kiln.assign), with no recorded run between (${path})`, () => {
        // Winograd forced: the filters' transform, kept with the packed filters, must be made again too.
        if (path === 'winograd') process.env.KILN_CONV_PATH = 'winograd';
        try {
          const model = kiln.onnx.load(residualNet());
          const x = kiln.randn([1, 3, 16, 16], { seed: 13 });
          const before = infer(model, x, 'on').y;
          const weights = Object.entries(model.stateDict()).filter(([, t]) => t.shape.length === 4 && t.shape[1] >= 16);
          expect(weights.length).toBeGreaterThan(0);
          kiln.noGrad(() => kiln.tidy(() => weights.forEach(([, w]) => kiln.assign(w, w.mul(-0.5)))));
          const on = infer(model, x, 'on').y;
          const off = infer(model, x, 'off').y;
          expect(Math.max(...Array.from(on.dataSync(), (v, i) => Math.abs(v - before.dataSync()[i])))).toBeGreaterThan(1e-3);
          expectClose(on, { shape: [...off.shape], data: Array.from(off.dataSync()) }, 1e-5);
          kiln.dispose([x, before, on, off]);
          model.dispose();
        } finally {
          delete process.env.KILN_CONV_PATH;
        }
      });
    }

    it('runs the plain graph in training, and infers blocked with the fine-tuned weights after fit', async () => {
      const path = residualNet();
      const model = kiln.onnx.load(path);
      const x = kiln.randn([4, 3, 16, 16], { seed: 11 });
      const before = infer(model, x, 'on').y;
      const runs = model.nchwc.runs;
      // Gradients recorded for the parameters (eval mode): the plain graph runs.
      const loss = kiln.tidy(() => model.forward(x).square().mean());
      expect(model.nchwc.runs).toBe(runs);
      loss.dispose();
      const target = kiln.randn([4, 40], { seed: 12 });
      const optimizer = new kiln.optim.SGD(model.parameters(), { lr: 0.05 });
      await kiln.fit(model, { x, y: target }, { epochs: 2, batchSize: 2, optimizer, loss: (o, y) => o.sub(y).square().mean(), verbose: 0 });
      optimizer.dispose();
      model.eval();
      expect(model.nchwc.runs).toBe(runs);
      const on = infer(model, x, 'on').y;
      const off = infer(model, x, 'off').y;
      expect(model.nchwc.runs).toBe(runs + (applies ? 1 : 0));
      // The weights moved, and the blocked run uses them.
      expect(Math.max(...Array.from(on.dataSync(), (v, i) => Math.abs(v - before.dataSync()[i])))).toBeGreaterThan(1e-3);
      expectClose(on, { shape: [...off.shape], data: Array.from(off.dataSync()) }, 1e-5);
      kiln.dispose([x, target, before, on, off]);
      model.dispose();
    }, 60_000);

    it('runs the light ResNet-50 and SqueezeNet blocked with their reference outputs', () => {
      for (const name of ['resnet50', 'squeezenet']) {
        const path = join(lightDir(), `light_${name}.onnx`);
        const model = kiln.onnx.load(path);
        expect(model.nchwc.nodes.length, name).toBeGreaterThan(name === 'resnet50' ? 50 : 15);
        const shape = model.inputs[0].shape!.map((d) => (typeof d === 'number' ? d : 1));
        const size = shape.reduce((a, b) => a * b, 1);
        const x = kiln.tensor(Float32Array.from({ length: size }, (_, i) => i / size), shape);
        const expected = kiln.onnx.tensorFromProto(kiln.onnx.decodeTensor(readFileSync(path.replace(/\.onnx$/, '_output_0.pb'))), name);
        const got = kiln.noGrad(() => model.forward(x));
        expect(model.nchwc.runs, name).toBe(applies ? 1 : 0);
        expectClose(got, { shape: [...expected.shape], data: Array.from(expected.dataSync()) }, 1e-4);
        kiln.dispose([x, expected, got]);
        model.dispose();
      }
    }, 120_000);
  });
});
