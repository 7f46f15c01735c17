/**
 * The Transformer's layers on Kiln's kernels in imported graphs, with onnxruntime's outputs.
 * LayerNorm (ts/onnx/fusion/layer-norm.ts and the LayerNormalization op): the ten-node spellings
 * of exporters before opset 17 (Kiln's own old one, with the mean and the centred input computed
 * twice; torch's, with Pow, Div and one centred input read twice; opset 18's axes as an input) run
 * as one layerNorm call; a pattern whose run-time check fails (a mean over a leading axis) runs its
 * original nodes; in training mode the original nodes run and gradients reach the scale and shift.
 * Linear (ts/onnx/fusion/linear.ts and Gemm): MatMul(x, Transpose(W)) + Add and MatMul(x, B) + Add
 * run as one kiln.linear call; an Add of a residual alone runs the original nodes; a residual Add
 * after the bias Add joins the call (either operand order), unless its residual broadcasts; in
 * training mode the original nodes run and gradients reach the weight, the bias and the residual.
 * Linears that read the same input (ts/onnx/fusion/linear-group.ts: a Transformer's Q, K and V)
 * run as one linear call on their stacked weights, both weight spellings mixed; one with a residual
 * stays on its own; a weight written in place is stacked again; training runs each on its own.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import * as kiln from '../../ts/index.js';
import type { Tensor } from '../../ts/index.js';
import { backend } from '../../ts/engine.js';
import type { NodeProto } from '../../ts/onnx/proto.js';
import { forEachBackend } from '../backends.js';
import { expectClose, modelBytes, onnxruntime } from './graphs.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-onnx-layers-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ints = (name: string, values: number[]) => ({ name, type: 7, ints: values });
const int = (name: string, value: number) => ({ name, type: 2, i: value });
/** ReduceMean over `axes` (an attribute, or before opset 18 an input named `axesInput`). */
const mean = (x: string, out: string, axes: number[] | string): NodeProto =>
  typeof axes === 'string'
    ? { opType: 'ReduceMean', input: [x, axes], output: [out], name: out, attribute: [int('keepdims', 1)] }
    : { opType: 'ReduceMean', input: [x], output: [out], name: out, attribute: [ints('axes', axes), int('keepdims', 1)] };

/** Kiln's export before nn.LayerNorm had its own op: the mean and the centred input twice, Mul(c, c), Reciprocal. */
function kilnSpelling(axes: number[]): NodeProto[] {
  return [
    mean('x', 'm1', axes),
    { opType: 'Sub', input: ['x', 'm1'], output: ['c1'], name: 'c1' },
    mean('x', 'm2', axes),
    { opType: 'Sub', input: ['x', 'm2'], output: ['c2'], name: 'c2' },
    { opType: 'Mul', input: ['c2', 'c2'], output: ['sq'], name: 'sq' },
    mean('sq', 'var', axes),
    { opType: 'Add', input: ['var', 'eps'], output: ['ve'], name: 've' },
    { opType: 'Sqrt', input: ['ve'], output: ['sd'], name: 'sd' },
    { opType: 'Reciprocal', input: ['sd'], output: ['inv'], name: 'inv' },
    { opType: 'Mul', input: ['c1', 'inv'], output: ['n'], name: 'n' },
    { opType: 'Mul', input: ['n', 'w'], output: ['nw'], name: 'nw' },
    { opType: 'Add', input: ['nw', 'b'], output: ['y'], name: 'y' },
  ];
}

/** torch.onnx.export's spelling (opset < 17): one centred input read by Pow and Div. */
function torchSpelling(axes: number[] | string): NodeProto[] {
  return [
    mean('x', 'm', axes),
    { opType: 'Sub', input: ['x', 'm'], output: ['c'], name: 'c' },
    { opType: 'Pow', input: ['c', 'two'], output: ['sq'], name: 'sq' },
    mean('sq', 'var', axes),
    { opType: 'Add', input: ['var', 'eps'], output: ['ve'], name: 've' },
    { opType: 'Sqrt', input: ['ve'], output: ['sd'], name: 'sd' },
    { opType: 'Div', input: ['c', 'sd'], output: ['n'], name: 'n' },
    { opType: 'Mul', input: ['n', 'w'], output: ['nw'], name: 'nw' },
    { opType: 'Add', input: ['nw', 'b'], output: ['y'], name: 'y' },
  ];
}

/** Writes the graph (x [batch, 3, 8] and the parameters) and returns its path. */
function saved(name: string, nodes: NodeProto[], extra: Record<string, Tensor> = {}, opset = 13, normalized = [8]): string {
  const path = join(dir, `${name}.onnx`);
  const size = normalized.reduce((p, d) => p * d, 1);
  const initializers = {
    eps: kiln.tensor([1e-5], []),
    two: kiln.tensor([2], []),
    w: kiln.tensor(Array.from({ length: size }, (_, i) => 0.5 + 0.1 * i), normalized),
    b: kiln.tensor(Array.from({ length: size }, (_, i) => 0.05 * i - 0.2), normalized),
    ...extra,
  };
  writeFileSync(path, modelBytes({ nodes, inputs: [['x', ['batch', 3, 8]]], outputs: ['y'], initializers }, opset));
  kiln.dispose(Object.values(initializers));
  return path;
}

/** Runs `path` on x, counting calls of the `kernel` entry; checks the output against onnxruntime's. */
function runChecked(path: string, x: Tensor, kernelName: 'layerNorm' | 'linear' = 'layerNorm'): { kernelCalls: number; fusions: string[] } {
  const imported = kiln.onnx.load(path);
  const kernel = vi.spyOn(backend().impl, kernelName);
  const got = kiln.tidy(() => imported.forward(x));
  const kernelCalls = kernel.mock.calls.length;
  kernel.mockRestore();
  expectClose(got, onnxruntime(path, { x }).y, 1e-5);
  const fusions = imported.fusions.map((f) => f.pattern);
  got.dispose();
  imported.dispose();
  return { kernelCalls, fusions };
}

forEachBackend(() => {
  describe('onnx.load: LayerNorm', () => {
    it("fuses Kiln's old spelling, torch's, and opset 18's axes input into one layerNorm call", () => {
      const x = kiln.tidy(() => kiln.randn([2, 3, 8], { seed: 3 }).mul(4).add(10));
      const cases: Array<[string, string]> = [
        ['kiln', saved('kiln', kilnSpelling([2]))],
        ['kiln, negative axis', saved('kiln-negative', kilnSpelling([-1]))],
        ['torch', saved('torch', torchSpelling([-1]))],
        ['opset 18', saved('opset18', torchSpelling('axes'), { axes: kiln.tidy(() => kiln.tensor([-1], [1]).cast('int32')) }, 18)],
        ['two trailing dims', saved('two-dims', torchSpelling([1, 2]), {}, 13, [3, 8])],
      ];
      for (const [what, path] of cases) {
        const { kernelCalls, fusions } = runChecked(path, x);
        expect(fusions, what).toEqual(['LayerNorm']);
        expect(kernelCalls, what).toBe(1);
      }
      x.dispose();
    });

    it('runs the original nodes when the means are not over trailing axes', () => {
      const x = kiln.randn([2, 3, 8], { seed: 4 });
      // Normalizing over axis 1 with a [3, 8]-broadcast scale is a valid graph, but not a layer norm of the last dims.
      const { kernelCalls, fusions } = runChecked(saved('leading', torchSpelling([1]), {}, 13, [3, 8]), x);
      expect(fusions).toEqual(['LayerNorm']);
      expect(kernelCalls).toBe(0);
      x.dispose();
    });

    it('LayerNormalization runs on the kernel; asked for Mean and InvStdDev, it composes them', () => {
      const x = kiln.randn([2, 3, 8], { seed: 5 });
      const node = (outputs: string[]): NodeProto => ({ opType: 'LayerNormalization', input: ['x', 'w', 'b'], output: outputs, name: 'ln', attribute: [int('axis', -1), { name: 'epsilon', type: 1, f: 1e-5 }] });
      expect(runChecked(saved('op', [node(['y'])], {}, 17), x).kernelCalls).toBe(1);
      expect(runChecked(saved('op-stats', [node(['y', 'mean', 'inv'])], {}, 17), x).kernelCalls).toBe(0);
      x.dispose();
    });

    it('trains through the original nodes: gradients reach the scale and shift', () => {
      const imported = kiln.onnx.load(saved('train', torchSpelling([-1])));
      imported.train();
      const x = kiln.randn([2, 3, 8], { seed: 6 });
      const loss = kiln.tidy(() => imported.forward(x).mul(kiln.randn([2, 3, 8], { seed: 7 })).sum());
      loss.backward();
      const params = Object.fromEntries(Object.entries(imported.stateDict()));
      for (const name of ['w', 'b']) expect(params[name].grad, name).not.toBeNull();
      kiln.dispose([loss, x]);
      imported.dispose();
    });
  });

  describe('onnx.load: Linear', () => {
    /** x [batch, 3, 8] -> [batch, 3, 5]: MatMul on `weight` (W [5, 8] transposed, or B [8, 5]) then Add of `addend`. */
    function linearGraph(name: string, transposed: boolean, addend: Tensor): string {
      const path = join(dir, `${name}.onnx`);
      const weight = transposed ? kiln.randn([5, 8], { seed: 20 }) : kiln.randn([8, 5], { seed: 21 });
      const nodes: NodeProto[] = [
        ...(transposed ? [{ opType: 'Transpose', input: ['W'], output: ['Wt'], name: 't', attribute: [ints('perm', [1, 0])] }] : []),
        { opType: 'MatMul', input: ['x', transposed ? 'Wt' : 'W'], output: ['mm'], name: 'mm' },
        { opType: 'Add', input: ['mm', 'c'], output: ['y'], name: 'add' },
      ];
      writeFileSync(path, modelBytes({ nodes, inputs: [['x', ['batch', 3, 8]]], outputs: ['y'], initializers: { W: weight, c: addend } }));
      weight.dispose();
      return path;
    }

    it('runs MatMul(x, Transpose(W)) + Add and MatMul(x, B) + Add as one linear call; an Add of a residual on the nodes', () => {
      const x = kiln.randn([2, 3, 8], { seed: 22 });
      const [bias, residual] = [kiln.randn([5], { seed: 23 }), kiln.randn([3, 5], { seed: 24 })];
      const cases: Array<[string, string, number]> = [
        ['kiln', linearGraph('linear-kiln', true, bias), 1],
        ['torch', linearGraph('linear-torch', false, bias), 1],
        ['residual', linearGraph('linear-residual', true, residual), 0],
      ];
      for (const [what, path, calls] of cases) {
        const { kernelCalls, fusions } = runChecked(path, x, 'linear');
        expect(fusions, what).toEqual(['Linear']);
        expect(kernelCalls, what).toBe(calls);
      }
      kiln.dispose([x, bias, residual]);
    });

    /** x [batch, 3, 8], r (graph input, `residualShape`) -> MatMul(x, Transpose(W)) + Add(c) + Add of r. */
    function skipGraph(name: string, residualFirst: boolean, residualShape: Array<number | string>): string {
      const path = join(dir, `${name}.onnx`);
      const initializers = { W: kiln.randn([5, 8], { seed: 30 }), c: kiln.randn([5], { seed: 31 }) };
      const nodes: NodeProto[] = [
        { opType: 'Transpose', input: ['W'], output: ['Wt'], name: 't', attribute: [ints('perm', [1, 0])] },
        { opType: 'MatMul', input: ['x', 'Wt'], output: ['mm'], name: 'mm' },
        { opType: 'Add', input: ['mm', 'c'], output: ['lin'], name: 'bias' },
        { opType: 'Add', input: residualFirst ? ['r', 'lin'] : ['lin', 'r'], output: ['y'], name: 'skip' },
      ];
      writeFileSync(path, modelBytes({ nodes, inputs: [['x', ['batch', 3, 8]], ['r', residualShape]], outputs: ['y'], initializers }));
      kiln.dispose(Object.values(initializers));
      return path;
    }

    it('takes the residual Add after the bias into the linear call, either operand order; a residual that broadcasts runs the nodes', () => {
      const x = kiln.randn([2, 3, 8], { seed: 32 });
      const cases: Array<[string, string, Tensor, number]> = [
        ['residual first', skipGraph('skip-first', true, ['batch', 3, 5]), kiln.randn([2, 3, 5], { seed: 33 }), 1],
        ['residual second', skipGraph('skip-second', false, ['batch', 3, 5]), kiln.randn([2, 3, 5], { seed: 34 }), 1],
        ['broadcast residual', skipGraph('skip-broadcast', true, [3, 5]), kiln.randn([3, 5], { seed: 35 }), 0],
      ];
      for (const [what, path, r, calls] of cases) {
        const imported = kiln.onnx.load(path);
        expect(imported.fusions, what).toEqual([{ pattern: 'Linear', nodes: ['t', 'mm', 'bias', 'skip'] }]);
        const kernel = vi.spyOn(backend().impl, 'linear');
        const got = kiln.noGrad(() => imported.forward(x, r));
        expect(kernel.mock.calls.length, what).toBe(calls);
        // The residual crosses as the call's fourth argument (a handle, not -1).
        if (calls > 0) expect(kernel.mock.calls[0][3], what).toBeGreaterThanOrEqual(0);
        kernel.mockRestore();
        expectClose(got, onnxruntime(path, { x, r }).y, 1e-5);
        // The same graph unfused (training mode runs the original nodes), under noGrad.
        imported.train();
        const unfused = kiln.noGrad(() => imported.forward(x, r));
        expectClose(got, { shape: [...unfused.shape], data: [...unfused.dataSync()] }, 1e-5);
        kiln.dispose([got, unfused, r]);
        imported.dispose();
      }
      x.dispose();
    });

    it('trains through the original nodes: gradients reach the weight, the bias and the residual', () => {
      const imported = kiln.onnx.load(skipGraph('skip-train', true, ['batch', 3, 5]));
      imported.train();
      const x = kiln.randn([2, 3, 8], { seed: 36 });
      const r = kiln.randn([2, 3, 5], { seed: 37 }).setRequiresGrad(true);
      const loss = kiln.tidy(() => imported.forward(x, r).mul(kiln.randn([2, 3, 5], { seed: 38 })).sum());
      loss.backward();
      const params = Object.fromEntries(Object.entries(imported.stateDict()));
      for (const name of ['W', 'c']) expect(params[name].grad, name).not.toBeNull();
      expect(r.grad).not.toBeNull();
      kiln.dispose([loss, x, r]);
      imported.dispose();
    });

    /**
     * x [batch, 3, 8] -> q, k, v ([batch, 3, 5], [batch, 3, 4], [batch, 3, 5]): three Linears of x (q and
     * v as W [N, 8] transposed, k as B [8, 4]), and o = Linear(x) + r read by none of them.
     */
    function groupGraph(): { path: string; initializers: Record<string, Tensor> } {
      const path = join(dir, 'linear-group.onnx');
      const initializers = {
        Wq: kiln.randn([5, 8], { seed: 40 }), bq: kiln.randn([5], { seed: 41 }),
        Bk: kiln.randn([8, 4], { seed: 42 }), bk: kiln.randn([4], { seed: 43 }),
        Wv: kiln.randn([5, 8], { seed: 44 }), bv: kiln.randn([5], { seed: 45 }),
        Wo: kiln.randn([5, 8], { seed: 46 }), bo: kiln.randn([5], { seed: 47 }),
      };
      const linearNodes = (name: string, w: string, bias: string, transposed: boolean): NodeProto[] => [
        ...(transposed ? [{ opType: 'Transpose', input: [w], output: [`${name}.t`], name: `${name}.t`, attribute: [ints('perm', [1, 0])] }] : []),
        { opType: 'MatMul', input: ['x', transposed ? `${name}.t` : w], output: [`${name}.mm`], name: `${name}.mm` },
        { opType: 'Add', input: [`${name}.mm`, bias], output: [name === 'o' ? 'o.lin' : name], name },
      ];
      const nodes: NodeProto[] = [
        ...linearNodes('q', 'Wq', 'bq', true),
        // A reader of q between the group's members: the group must run where q was made.
        { opType: 'Relu', input: ['q'], output: ['qr'], name: 'qr' },
        ...linearNodes('k', 'Bk', 'bk', false),
        ...linearNodes('v', 'Wv', 'bv', true),
        ...linearNodes('o', 'Wo', 'bo', true),
        { opType: 'Add', input: ['o.lin', 'r'], output: ['o'], name: 'o.skip' },
      ];
      const outputs = ['qr', 'k', 'v', 'o'];
      writeFileSync(path, modelBytes({ nodes, inputs: [['x', ['batch', 3, 8]], ['r', ['batch', 3, 5]]], outputs, initializers }));
      return { path, initializers };
    }

    it('runs Linears of one input as one linear call on their stacked weights; a weight written in place is stacked again', () => {
      const { path, initializers } = groupGraph();
      const x = kiln.randn([2, 3, 8], { seed: 48 });
      const r = kiln.randn([2, 3, 5], { seed: 49 });
      const imported = kiln.onnx.load(path);
      expect(imported.fusions.map((f) => f.pattern)).toEqual(['LinearGroup', 'Linear']);
      expect(imported.fusions[0].nodes).toEqual(['q.t+q.mm+q', 'k.mm+k', 'v.t+v.mm+v']);
      const check = (what: string) => {
        const kernel = vi.spyOn(backend().impl, 'linear');
        const got = kiln.noGrad(() => imported.run({ x, r }));
        // One call for q, k and v, one for o.
        expect(kernel.mock.calls.length, what).toBe(2);
        kernel.mockRestore();
        const want = onnxruntime(path, { x, r });
        for (const name of ['qr', 'k', 'v', 'o']) expectClose(got[name], want[name], 1e-5);
        kiln.dispose(Object.values(got));
      };
      check('first run');
      // The model's own k weight written in place (as an optimizer step outside fit would): the
      // next run stacks again, and agrees with the original nodes (training mode) on the new weight.
      const before = kiln.noGrad(() => imported.run({ x, r }).k);
      const params = imported.stateDict();
      kiln.assign(params.Bk, params.Bk.mul(-2));
      const after = kiln.noGrad(() => imported.run({ x, r }).k);
      imported.train();
      const unfused = kiln.noGrad(() => imported.run({ x, r }).k);
      expectClose(after, { shape: [...unfused.shape], data: [...unfused.dataSync()] }, 1e-6);
      expectClose(after, { shape: [...before.shape], data: [...before.mul(-2).add(params.bk.mul(3)).dataSync()] }, 1e-5);
      kiln.dispose([before, after, unfused, x, r]);
      imported.dispose();
      kiln.dispose(Object.values(initializers));
    });

    it('takes the Reshapes that split each member into heads (one head size), as views of one reshaped product', () => {
      // q [batch, 3, 4], k [batch, 3, 6], v [batch, 3, 4], each reshaped to heads of 2 (0 copies a dim, -1 is inferred).
      const path = join(dir, 'linear-group-heads.onnx');
      const initializers: Record<string, Tensor> = {
        Wq: kiln.randn([4, 8], { seed: 60 }), bq: kiln.randn([4], { seed: 61 }),
        Wk: kiln.randn([6, 8], { seed: 62 }), bk: kiln.randn([6], { seed: 63 }),
        Wv: kiln.randn([4, 8], { seed: 64 }), bv: kiln.randn([4], { seed: 65 }),
        sq: kiln.tensor([0, 0, 2, 2], [4]).cast('int32'), sk: kiln.tensor([0, 0, -1, 2], [4]).cast('int32'), sv: kiln.tensor([0, 3, 2, -1], [4]).cast('int32'),
      };
      const nodes: NodeProto[] = ['q', 'k', 'v'].flatMap((name): NodeProto[] => [
        { opType: 'Transpose', input: [`W${name}`], output: [`${name}.t`], name: `${name}.t`, attribute: [ints('perm', [1, 0])] },
        { opType: 'MatMul', input: ['x', `${name}.t`], output: [`${name}.mm`], name: `${name}.mm` },
        { opType: 'Add', input: [`${name}.mm`, `b${name}`], output: [`${name}.lin`], name: `${name}.lin` },
        { opType: 'Reshape', input: [`${name}.lin`, `s${name}`], output: [name], name },
      ]);
      writeFileSync(path, modelBytes({ nodes, inputs: [['x', ['batch', 3, 8]]], outputs: ['q', 'k', 'v'], initializers }));
      kiln.dispose(Object.values(initializers));
      const imported = kiln.onnx.load(path);
      expect(imported.fusions).toEqual([{ pattern: 'LinearGroup', nodes: ['q.t+q.mm+q.lin', 'k.t+k.mm+k.lin', 'v.t+v.mm+v.lin', 'q', 'k', 'v'] }]);
      const x = kiln.randn([2, 3, 8], { seed: 66 });
      const kernel = vi.spyOn(backend().impl, 'linear');
      const got = kiln.noGrad(() => imported.run({ x }));
      expect(kernel.mock.calls.length).toBe(1);
      kernel.mockRestore();
      const want = onnxruntime(path, { x });
      for (const name of ['q', 'k', 'v']) expectClose(got[name], want[name], 1e-5);
      // Views of the product: no Reshape copied its input.
      for (const name of ['q', 'k', 'v']) expect(backend().impl.isContiguous(got[name].handle), name).toBe(false);
      kiln.dispose([...Object.values(got), x]);
      imported.dispose();
    });

    it('in training mode each Linear runs its own nodes: gradients reach every weight of the group', () => {
      const { path, initializers } = groupGraph();
      kiln.dispose(Object.values(initializers));
      const imported = kiln.onnx.load(path);
      imported.train();
      const x = kiln.randn([2, 3, 8], { seed: 50 });
      const r = kiln.randn([2, 3, 5], { seed: 51 });
      const loss = kiln.tidy(() => {
        const out = imported.run({ x, r });
        return out.qr.sum().add(out.k.square().sum()).add(out.v.sum());
      });
      loss.backward();
      const params = imported.stateDict();
      for (const name of ['Wq', 'bq', 'Bk', 'bk', 'Wv', 'bv']) expect(params[name].grad, name).not.toBeNull();
      kiln.dispose([loss, x, r]);
      imported.dispose();
    });

    it("Gemm with transB (torch's nn.Linear on 2-D input) runs on linear; scaled by alpha, on matmul", () => {
      const path = (name: string, alpha: number) => {
        const p = join(dir, `${name}.onnx`);
        const node: NodeProto = { opType: 'Gemm', input: ['x', 'W', 'c'], output: ['y'], name: 'gemm', attribute: [int('transB', 1), { name: 'alpha', type: 1, f: alpha }] };
        const initializers = { W: kiln.randn([5, 8], { seed: 25 }), c: kiln.randn([5], { seed: 26 }) };
        writeFileSync(p, modelBytes({ nodes: [node], inputs: [['x', ['batch', 8]]], outputs: ['y'], initializers }));
        kiln.dispose(Object.values(initializers));
        return p;
      };
      const x = kiln.randn([4, 8], { seed: 27 });
      expect(runChecked(path('gemm', 1), x, 'linear').kernelCalls).toBe(1);
      expect(runChecked(path('gemm-alpha', 0.5), x, 'linear').kernelCalls).toBe(0);
      x.dispose();
    });
  });
});
