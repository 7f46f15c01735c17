/**
 * Helpers of the ONNX suites: a one-graph model written with Kiln's own encoder, onnxruntime (the
 * `onnxruntime` wheel of Kiln's venv, fixtures/run_onnxruntime.py) as the reference runner, the
 * comparison with its outputs, and the Transformer layers the export and fusion suites trace.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import * as kiln from '../../ts/index.js';
import { nn, type Tensor } from '../../ts/index.js';
import { encodeModel, type NodeProto } from '../../ts/onnx/proto.js';
import { tensorToProto } from '../../ts/onnx/tensors.js';
import { pythonBin } from './python.js';

const runner = fileURLToPath(new URL('./fixtures/run_onnxruntime.py', import.meta.url));

/** A one-graph model from nodes and float32 initializers (built with Kiln's own encoder). */
export function modelBytes(graph: { nodes: NodeProto[]; inputs: Array<[string, Array<number | string>, number?]>; outputs: string[]; initializers?: Record<string, kiln.Tensor> }, opset = 17): Uint8Array {
  /** An input's or output's info: float (ONNX element type 1) unless `elemType` says otherwise (7: int64). */
  const valueInfo = (name: string, dims?: Array<number | string>, elemType = 1) => ({
    name,
    type: { tensorType: { elemType, shape: dims === undefined ? undefined : { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  });
  return encodeModel({
    irVersion: 8,
    opsetImport: [{ domain: '', version: opset }],
    graph: {
      name: 'test',
      node: graph.nodes,
      input: graph.inputs.map(([n, d, type]) => valueInfo(n, d, type)),
      output: graph.outputs.map((n) => valueInfo(n)),
      initializer: Object.entries(graph.initializers ?? {}).map(([n, t]) => tensorToProto(t, n)),
    },
  });
}

/** onnxruntime's outputs for `inputs` (by graph input name) of the model at `path`. */
export function onnxruntime(path: string, inputs: Record<string, kiln.Tensor>): Record<string, { shape: number[]; data: number[] }> {
  const feeds = Object.fromEntries(Object.entries(inputs).map(([n, t]) => [n, { shape: [...t.shape], data: Array.from(t.dataSync(), Number), dtype: t.dtype }]));
  writeFileSync(`${path}.inputs.json`, JSON.stringify(feeds));
  const r = spawnSync(pythonBin, [runner, path, `${path}.inputs.json`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`onnxruntime failed on ${path} (npm test installs onnxruntime into the venv):\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** Relative closeness (|got - want| / (1 + |want|)) to a reference output, shape included. */
export function expectClose(got: Tensor, want: { shape: number[]; data: number[] }, tolerance = 1e-4): void {
  expect([...got.shape]).toEqual(want.shape);
  const g = got.dataSync();
  let worst = 0;
  want.data.forEach((w, i) => (worst = Math.max(worst, Math.abs(g[i] - w) / (1 + Math.abs(w)))));
  expect(worst).toBeLessThan(tolerance);
}

/** One Transformer encoder layer (d 16, 4 heads) with a key padding mask: (x [B, T, 16], padding bool [B, T]). */
export class Encoder extends nn.Module<[Tensor, Tensor], Tensor> {
  readonly layer: nn.TransformerEncoderLayer;
  constructor(seed: number) {
    super();
    this.layer = new nn.TransformerEncoderLayer(16, 4, { dimFeedforward: 32, seed });
  }
  forward(x: Tensor, padding: Tensor): Tensor {
    return this.layer.forward(x, { keyPaddingMask: padding });
  }
}

/** One Transformer decoder layer (d 16, 2 heads; causal self-attention, cross-attention): (x, memory). */
export class Decoder extends nn.Module<[Tensor, Tensor], Tensor> {
  readonly layer: nn.TransformerDecoderLayer;
  constructor(seed: number) {
    super();
    this.layer = new nn.TransformerDecoderLayer(16, 2, { dimFeedforward: 24, seed });
  }
  forward(x: Tensor, memory: Tensor): Tensor {
    return this.layer.forward(x, memory);
  }
}

/**
 * A pre-norm-free Transformer encoder layer written node by node as kiln.onnx.save spells it,
 * but with dynamic dims (x: [batch, seq, d]; the Reshapes' targets copy dims with 0 and infer
 * one with -1): the Q, K and V Linears split into heads, attention with K's Transpose, the heads
 * merged, an output Linear with a residual, LayerNormalization, a GELU feed-forward with a
 * residual, LayerNormalization. Returns the nodes and the initializers (float weights, int32
 * Reshape targets), for modelBytes.
 */
export function transformerLayer(d: number, heads: number, ffn: number, seed: number): { nodes: NodeProto[]; initializers: Record<string, Tensor> } {
  const perm = (v: number[]) => [{ name: 'perm', type: 7, ints: v }];
  const linear = (name: string, x: string, out: string): NodeProto[] => [
    { opType: 'Transpose', input: [`W${name}`], output: [`W${name}.t`], name: `W${name}.t`, attribute: perm([1, 0]) },
    { opType: 'MatMul', input: [x, `W${name}.t`], output: [`${name}.mm`], name: `${name}.mm` },
    { opType: 'Add', input: [`${name}.mm`, `b${name}`], output: [out], name: out },
  ];
  const nodes: NodeProto[] = [
    ...['q', 'k', 'v'].flatMap((n): NodeProto[] => [
      ...linear(n, 'x', `${n}.lin`),
      { opType: 'Reshape', input: [`${n}.lin`, 'heads'], output: [`${n}.r`], name: `${n}.r` },
      { opType: 'Transpose', input: [`${n}.r`], output: [`${n}.h`], name: `${n}.h`, attribute: perm([0, 2, 1, 3]) },
    ]),
    { opType: 'Transpose', input: ['k.h'], output: ['kt'], name: 'kt', attribute: perm([0, 1, 3, 2]) },
    { opType: 'MatMul', input: ['q.h', 'kt'], output: ['scores'], name: 'scores' },
    { opType: 'Mul', input: ['scores', 'scale'], output: ['scaled'], name: 'scaled' },
    { opType: 'Softmax', input: ['scaled'], output: ['p'], name: 'p', attribute: [{ name: 'axis', type: 2, i: -1 }] },
    { opType: 'MatMul', input: ['p', 'v.h'], output: ['ctx'], name: 'ctx' },
    { opType: 'Transpose', input: ['ctx'], output: ['ctx.t'], name: 'ctx.t', attribute: perm([0, 2, 1, 3]) },
    { opType: 'Reshape', input: ['ctx.t', 'merge'], output: ['merged'], name: 'merged' },
    ...linear('o', 'merged', 'o.lin'),
    { opType: 'Add', input: ['x', 'o.lin'], output: ['h1'], name: 'h1' },
    { opType: 'LayerNormalization', input: ['h1', 'g1', 'e1'], output: ['n1'], name: 'n1', attribute: [{ name: 'axis', type: 2, i: -1 }] },
    ...linear('1', 'n1', 'f1'),
    { opType: 'Div', input: ['f1', 'sqrt2'], output: ['g.s'], name: 'g.s' },
    { opType: 'Erf', input: ['g.s'], output: ['g.e'], name: 'g.e' },
    { opType: 'Add', input: ['g.e', 'one'], output: ['g.p'], name: 'g.p' },
    { opType: 'Mul', input: ['f1', 'half'], output: ['g.h'], name: 'g.h' },
    { opType: 'Mul', input: ['g.h', 'g.p'], output: ['gelu'], name: 'gelu' },
    ...linear('2', 'gelu', 'f2'),
    { opType: 'Add', input: ['n1', 'f2'], output: ['h2'], name: 'h2' },
    { opType: 'LayerNormalization', input: ['h2', 'g2', 'e2'], output: ['y'], name: 'y', attribute: [{ name: 'axis', type: 2, i: -1 }] },
  ];
  const weight = (rows: number, cols: number, i: number) => kiln.randn([rows, cols], { seed: seed + i }).mul(1 / Math.sqrt(cols));
  const vector = (n: number, i: number, offset = 0) => kiln.randn([n], { seed: seed + i }).mul(0.1).add(offset);
  const initializers: Record<string, Tensor> = {
    Wq: weight(d, d, 0), bq: vector(d, 1), Wk: weight(d, d, 2), bk: vector(d, 3), Wv: weight(d, d, 4), bv: vector(d, 5),
    Wo: weight(d, d, 6), bo: vector(d, 7), W1: weight(ffn, d, 8), b1: vector(ffn, 9), W2: weight(d, ffn, 10), b2: vector(d, 11),
    g1: vector(d, 12, 1), e1: vector(d, 13), g2: vector(d, 14, 1), e2: vector(d, 15),
    scale: kiln.tensor([1 / Math.sqrt(d / heads)], []), sqrt2: kiln.tensor([Math.SQRT2], []), one: kiln.tensor([1], []), half: kiln.tensor([0.5], []),
    heads: kiln.tensor([0, 0, heads, -1], [4]).cast('int32'), merge: kiln.tensor([0, 0, -1], [3]).cast('int32'),
  };
  return { nodes, initializers };
}
