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
