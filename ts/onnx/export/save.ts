/**
 * kiln.onnx.save: exports a Kiln model to ONNX by tracing one forward pass. While the model runs
 * on example inputs, every call Kiln's ops make to the backend is intercepted and written as ONNX
 * nodes (export/emitters.ts); parameters and buffers become initializers under their module names,
 * tensors the model creates on the fly (masks, scalars) become constants. The graph is static:
 * the exported model takes inputs of the example inputs' shapes.
 */

import { backend } from '../../engine.js';
import { noGrad } from '../../autograd.js';
import { tidy } from '../../engine.js';
import type { Backend } from '../../backends/backend.js';
import { Tensor } from '../../tensor.js';
import { encodeModel, type TensorProto } from '../proto.js';
import { ONNX_TYPE } from '../tensors.js';
import { EMITTERS, type EmitContext } from './emitters.js';
import { GraphBuilder, valueInfoOf } from './graph-builder.js';

/** What save needs of a model: a forward pass, and named parameters/buffers if it is an nn.Module. */
export interface ExportableModel {
  /** The computation to export: traced once on the example inputs, returning one output or several. */
  forward(...inputs: Tensor[]): Tensor | Tensor[];
  /**
   * Parameters by name: each becomes a graph initializer under its name (so the exported weights
   * keep the module's stateDict names); other tensors the trace reads are stored as constants.
   */
  namedParameters?(): Array<[string, Tensor]>;
  /** Buffers by name (batch-norm running statistics, ...), exported as named initializers like parameters. */
  namedBuffers?(): Array<[string, Tensor]>;
  /** Whether the model is in training mode: read before tracing so the mode can be restored afterwards. */
  training?: boolean;
  /**
   * Sets training mode: save calls `train(false)` so dropout and batch norm trace their inference
   * behaviour, then restores the previous `training` value.
   */
  train?(mode?: boolean): unknown;
}

/** Names given to the exported graph's inputs and outputs (what onnxruntime's `session.run` feeds and returns by). */
export interface SaveOptions {
  /** Names of the graph inputs (default input_0, input_1, ...). */
  inputNames?: string[];
  /** Names of the graph outputs (default output_0, ...). */
  outputNames?: string[];
}

/** Backend methods that read or create data without computing from other tensors: run untraced. */
const UNTRACED = new Set([
  'opTable', 'simdLevel', 'setSimdLevel', 'numThreads', 'memory', 'fromF32', 'fromI32', 'fromBool', 'fromI8', 'shape', 'dtypeOf',
  'readF32', 'readI32', 'readBool', 'readI8', 'dispose', 'full', 'arange', 'eye', 'setSeed', 'setRequiresGrad', 'requiresGrad',
  'setGradEnabled', 'isContiguous', 'peakBytes', 'watchWrites', 'deviceOf', 'gpuInfo', 'gpuSynchronize', 'faulted',
]);

/** A TensorProto of a live handle's values (constants the model made during the trace). */
function captured(impl: Backend, h: number, name: string): TensorProto {
  const dims = impl.shape(h);
  const dtype = impl.dtypeOf(h);
  if (dtype === 'float32') return { name, dims, dataType: ONNX_TYPE.FLOAT, rawData: new Uint8Array(impl.readF32(h).slice().buffer) };
  if (dtype === 'int32') return { name, dims, dataType: ONNX_TYPE.INT32, rawData: new Uint8Array(impl.readI32(h).slice().buffer) };
  if (dtype === 'bool') return { name, dims, dataType: ONNX_TYPE.BOOL, rawData: impl.readBool(h).slice() };
  throw new Error(`onnx.save: a ${dtype} constant cannot be exported`);
}

/**
 * Traces `model.forward(...exampleInputs)` in eval mode without gradients and returns the ONNX
 * file's bytes (writing them to `path` when given). Throws naming the backend op when the model
 * uses one that has no ONNX form (quantized layers, graph message passing).
 */
export function toOnnxBytes(model: ExportableModel, exampleInputs: Tensor | Tensor[], options: SaveOptions = {}): Uint8Array {
  const inputs = Array.isArray(exampleInputs) ? exampleInputs : [exampleInputs];
  if (!inputs.every((t) => t instanceof Tensor)) throw new Error('onnx.save: exampleInputs must be a Tensor or an array of Tensors');
  if (typeof model?.forward !== 'function') throw new Error('onnx.save: the model must have a forward method (an nn.Module)');
  const b = backend();
  const real = b.impl;
  const g = new GraphBuilder();
  const names = new Map<number, string>();
  // Parameters and buffers become initializers the first time an op reads them.
  const named = new Map<number, [string, Tensor]>();
  for (const [n, t] of [...(model.namedParameters?.() ?? []), ...(model.namedBuffers?.() ?? [])]) named.set(t.handle, [n, t]);
  const inputNames = inputs.map((_, i) => options.inputNames?.[i] ?? `input_${i}`);
  inputs.forEach((t, i) => names.set(t.handle, inputNames[i]));
  const reverseCodes = Object.fromEntries(Object.entries(b.codes).map(([family, table]) => [family, Object.fromEntries(Object.entries(table).map(([n, code]) => [code, n]))]));

  const context: EmitContext = {
    g,
    name(h) {
      const known = names.get(h);
      if (known !== undefined) return known;
      const param = named.get(h);
      const name = param !== undefined ? param[0] : g.fresh('constant');
      g.initializer(captured(real, h, name));
      names.set(h, name);
      return name;
    },
    set: (h, name) => void names.set(h, name),
    shape: (h) => real.shape(h),
    dtype: (h) => real.dtypeOf(h),
    opName: (family, code) => reverseCodes[family]?.[code] ?? `${family} #${code}`,
  };
  const traced = new Proxy(real, {
    get(target, prop: string) {
      const value = (target as unknown as Record<string, unknown>)[prop];
      if (typeof value !== 'function') return value;
      const fn = value as (...args: unknown[]) => unknown;
      if (UNTRACED.has(prop)) return fn.bind(target);
      const emit = EMITTERS[prop];
      if (emit === undefined) return () => { throw new Error(`onnx.save: the model calls Kiln's '${prop}' op, which has no ONNX export`); };
      return (...args: unknown[]) => {
        const result = fn.apply(target, args);
        emit(context, args, result);
        return result;
      };
    },
  });

  const wasTraining = model.training;
  model.train?.(false);
  let outputs: Tensor[] = [];
  let shapes: Array<{ dtype: string; shape: number[] }> = [];
  b.impl = traced;
  try {
    noGrad(() =>
      tidy(() => {
        const result = model.forward(...inputs);
        outputs = Array.isArray(result) ? result : [result];
        shapes = outputs.map((t) => ({ dtype: t.dtype, shape: [...t.shape] }));
        const outNames = outputs.map((t, i) => options.outputNames?.[i] ?? `output_${i}`);
        outputs.forEach((t, i) => g.nodes.push({ opType: 'Identity', name: `/output_${i}`, input: [context.name(t.handle)], output: [outNames[i]] }));
        return [];
      }),
    );
  } finally {
    b.impl = real;
    if (wasTraining !== undefined) model.train?.(wasTraining);
  }
  const outNames = outputs.map((_, i) => options.outputNames?.[i] ?? `output_${i}`);
  return encodeModel({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    producerName: 'kiln',
    graph: {
      name: model.constructor?.name ?? 'kiln',
      node: g.nodes,
      input: inputs.map((t, i) => valueInfoOf(inputNames[i], t.dtype, t.shape)),
      output: shapes.map((s, i) => valueInfoOf(outNames[i], s.dtype, s.shape)),
      initializer: g.initializers,
    },
  });
}
