/**
 * `module.summary(inputShape)`: a table of layers with their output shapes and parameter counts.
 * Output shapes are observed, not inferred: every submodule's `forward` is wrapped for one pass on
 * zeros, so any plain-TypeScript composition is described correctly.
 */

import type { DType } from '../backends/backend.js';
import { noGrad } from '../autograd.js';
import { tidy } from '../engine.js';
import { zeros } from '../ops/creation.js';
import { Tensor } from '../tensor.js';

/**
 * The part of a Module that summarize reads and patches. Structural, so this file need not import
 * module.ts, which imports summarize (docs/architecture.md: no import circles, types included).
 */
interface AnyModule {
  training: boolean;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any layer's forward, whatever it takes
  forward(...args: any[]): unknown;
  namedChildren(): Array<[string, AnyModule]>;
  numParameters(options?: { trainableOnly?: boolean }): number;
  buffers(): Tensor[];
  eval(): unknown;
}

/** Options of `module.summary(inputShape, options)`: the probe input's dtype and batch size. */
export interface SummaryOptions {
  /** dtype of the zeros fed in: 'int32' for models that start with an Embedding (default float32). */
  dtype?: DType;
  /** Leading batch dimension of the probe input (default 1). */
  batchSize?: number;
  /** Print the table with console.log (default true). */
  print?: boolean;
}

interface Row {
  name: string;
  type: string;
  depth: number;
  shape: string;
  params: number;
}

/** Every module under `root` with its name and depth, pre-order (root at depth 0). */
function tree(root: AnyModule): Array<{ name: string; module: AnyModule; depth: number }> {
  const out: Array<{ name: string; module: AnyModule; depth: number }> = [];
  const seen = new Set<AnyModule>();
  const visit = (name: string, m: AnyModule, depth: number): void => {
    if (seen.has(m)) return;
    seen.add(m);
    out.push({ name, module: m, depth });
    for (const [child, c] of m.namedChildren()) visit(name === '' ? child : `${name}.${child}`, c, depth + 1);
  };
  visit('', root, 0);
  return out;
}

/** '[1, 512]' for a tensor; lists and records of tensors are described element by element. */
function describe(out: unknown): string {
  if (out instanceof Tensor) return `[${out.shape.join(', ')}]`;
  if (Array.isArray(out)) return out.map(describe).join(', ');
  if (out !== null && typeof out === 'object') return Object.entries(out).map(([k, v]) => `${k}: ${describe(v)}`).join(', ');
  return typeof out;
}

const fmt = (n: number): string => n.toLocaleString('en-US');

/** Builds (and prints unless print: false) the summary table of `model` for inputs [batch, ...inputShape]. */
export function summarize(model: AnyModule, inputShape: number[], options: SummaryOptions = {}): string {
  const batch = options.batchSize ?? 1;
  if (!Array.isArray(inputShape) || !inputShape.every((d) => Number.isInteger(d) && d >= 0) || !(Number.isInteger(batch) && batch >= 1)) {
    throw new Error(`summary: inputShape must be an array of non-negative integers (without the batch dim) and batchSize >= 1, got ${JSON.stringify(inputShape)}, batchSize ${batch}`);
  }
  const modules = tree(model);
  const modes = modules.map(({ module }) => module.training);
  const rows = new Map<AnyModule, Row>();
  const restore: Array<() => void> = [];
  let outputShape = '';
  try {
    for (const { name, module, depth } of modules) {
      if (module === model) continue;
      const hadOwn = Object.prototype.hasOwnProperty.call(module, 'forward');
      const original = module.forward;
      // Rows are created on entry, so a container is listed before its children.
      module.forward = (...args: unknown[]) => {
        if (!rows.has(module)) rows.set(module, { name, type: module.constructor.name, depth, shape: '?', params: module.numParameters() });
        const out = original.apply(module, args);
        rows.get(module)!.shape = describe(out);
        return out;
      };
      restore.push(() => (hadOwn ? (module.forward = original) : delete (module as { forward?: unknown }).forward));
    }
    model.eval();
    noGrad(() =>
      tidy(() => {
        outputShape = describe(model.forward(zeros([batch, ...inputShape], options.dtype ?? 'float32')));
      }),
    );
  } finally {
    for (const undo of restore) undo();
    modules.forEach(({ module }, i) => (module.training = modes[i]));
  }
  // Modules the forward pass never reached are still listed (their parameters count).
  for (const { name, module, depth } of modules) {
    if (module !== model && !rows.has(module)) rows.set(module, { name, type: module.constructor.name, depth, shape: '(not called)', params: module.numParameters() });
  }
  return render(model, [...rows.values()], `[${[batch, ...inputShape].join(', ')}] ${options.dtype ?? 'float32'}`, outputShape, options.print ?? true);
}

function render(model: AnyModule, rows: Row[], input: string, output: string, print: boolean): string {
  const cells = rows.map((r) => [`${'  '.repeat(Math.max(0, r.depth - 1))}${r.name} (${r.type})`, r.shape, fmt(r.params)]);
  const header = ['Layer (type)', 'Output shape', 'Param #'];
  const widths = header.map((h, c) => Math.max(h.length, ...cells.map((row) => row[c].length)));
  const line = (row: string[]): string => `${row[0].padEnd(widths[0])}   ${row[1].padEnd(widths[1])}   ${row[2].padStart(widths[2])}`;
  const total = model.numParameters();
  const trainable = model.numParameters({ trainableOnly: true });
  const bufferElements = model.buffers().reduce((n, b) => n + b.size, 0);
  const rule = (ch: string): string => ch.repeat(widths[0] + widths[1] + widths[2] + 6);
  const text = [
    `Model: ${model.constructor.name}   input ${input} -> output ${output}`,
    rule('─'),
    line(header),
    rule('═'),
    ...cells.map(line),
    rule('═'),
    `Total params: ${fmt(total)}`,
    `Trainable params: ${fmt(trainable)}`,
    `Non-trainable params: ${fmt(total - trainable)}`,
    `Buffer elements: ${fmt(bufferElements)}`,
    `Parameter memory: ${((total * 4) / 2 ** 20).toFixed(2)} MiB (float32)`,
  ].join('\n');
  if (print) console.log(text);
  return text;
}
