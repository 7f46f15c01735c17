/**
 * Bad input: every class of mistake throws a JS Error whose message names the op and the
 * offending shapes/dtypes/values, never a crash or an internal panic, and never a leak. Inputs
 * that could abort the process are run in a child process.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import * as kiln from '../ts/index.js';
import type { Tensor } from '../ts/index.js';
import { forEachBackend } from './backends.js';
import { expectThrows, surfaced } from './helpers.js';

const i32 = (...v: number[]) => kiln.tensor(Int32Array.from(v));

/** Asserts every call throws an Error naming `op`; reports all offenders at once. */
function expectAllThrow(cases: Array<[string, string, () => unknown]>): void {
  const problems: string[] = [];
  for (const [label, op, fn] of cases) {
    try {
      const r = fn();
      const shapes = [r].flat().map((t) => (t && typeof t === 'object' && 'shape' in t ? `[${(t as Tensor).shape.join(', ')}]` : String(t)));
      problems.push(`${label}: did not throw (returned ${shapes.join(', ')})`);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (!(e instanceof Error)) problems.push(`${label}: threw a non-Error ${msg}`);
      else if (!msg.includes(op)) problems.push(`${label}: message does not name '${op}': ${msg}`);
      else if (/internal error/i.test(msg)) problems.push(`${label}: internal error: ${msg}`);
    }
  }
  expect(problems, problems.join('\n')).toEqual([]);
}

forEachBackend((backendName) => {
  it('mismatched shapes: add, matmul, concat, stack, where, scatterAdd', () => {
    expectThrows(() => kiln.add(kiln.zeros([2, 3]), kiln.zeros([4])), 'add', '[2, 3]', '[4]');
    expectThrows(() => kiln.matmul(kiln.zeros([2, 3]), kiln.zeros([4, 5])), 'matmul', '[2, 3]', '[4, 5]');
    expectThrows(() => kiln.matmul(kiln.zeros([2, 3]), kiln.zeros([2, 3]), false, false), 'matmul', '[2, 3]');
    expectThrows(() => kiln.concat([kiln.zeros([2, 3]), kiln.zeros([2, 4])], 0), 'concat', '[2, 3]', '[2, 4]');
    expectThrows(() => kiln.concat([kiln.zeros([2, 3]), kiln.zeros([2, 3, 1])], 0), 'concat', '[2, 3]', '[2, 3, 1]');
    expectThrows(() => kiln.stack([kiln.zeros([2]), kiln.zeros([3])]), 'stack', '[2]', '[3]');
    expectThrows(() => kiln.where(kiln.zeros([2], 'bool'), kiln.zeros([3]), kiln.zeros([3])), 'where', '[2]', '[3]');
    expectThrows(() => kiln.scatterAdd(kiln.zeros([4, 2]), i32(0, 1), kiln.zeros([3, 2])), 'scatterAdd', '[3, 2]', '[2, 2]');
    expectThrows(() => kiln.expand(kiln.zeros([2, 3]), [4, 3]), 'expand', '[2, 3]', '[4, 3]');
  });

  it('matmul with incompatible batch dims names both operand shapes', () => {
    expectThrows(() => kiln.matmul(kiln.zeros([2, 4, 3]), kiln.zeros([3, 3, 5])), 'matmul', '[2, 4, 3]', '[3, 3, 5]');
  });

  it('wrong dtypes: unary/binary/reduce on int32 or bool, float indices, float condition, mixed concat', () => {
    expectThrows(() => kiln.exp(kiln.zeros([3], 'int32')), 'exp', 'int32', 'float32');
    expectThrows(() => kiln.relu(kiln.zeros([2, 2], 'bool')), 'relu', 'bool');
    expectThrows(() => kiln.add(kiln.zeros([2], 'int32'), kiln.zeros([2])), 'add', 'int32');
    expectThrows(() => kiln.add(kiln.zeros([2], 'int32'), 1), 'add', 'int32');
    expectThrows(() => kiln.less(kiln.zeros([2], 'bool'), kiln.zeros([2])), 'less', 'bool');
    expectThrows(() => kiln.sum(kiln.zeros([3], 'bool')), 'sum', 'bool');
    expectThrows(() => kiln.softmax(kiln.zeros([3], 'int32')), 'softmax', 'int32');
    expectThrows(() => kiln.matmul(kiln.zeros([2, 2], 'int32'), kiln.zeros([2, 2])), 'matmul', 'int32');
    expectThrows(() => kiln.gather(kiln.zeros([3, 2]), kiln.tensor([0, 1])), 'gather', 'int32', 'float32');
    expectThrows(() => kiln.oneHot(kiln.tensor([0, 1]), 3), 'oneHot', 'int32', 'float32');
    expectThrows(() => kiln.scatterAdd(kiln.zeros([3]), kiln.tensor([0]), kiln.ones([1])), 'scatterAdd', 'float32');
    expectThrows(() => kiln.where(kiln.ones([2]), kiln.ones([2]), kiln.zeros([2])), 'where', 'bool', 'float32');
    expectThrows(() => kiln.concat([kiln.zeros([2]), kiln.zeros([2], 'int32')]), 'concat', 'int32', 'float32');
    expectThrows(() => kiln.cast(kiln.zeros([1]), 'float64' as kiln.DType), 'cast', 'float64');
  });

  it('out-of-range axes', () => {
    const x = kiln.zeros([2, 3]);
    expectThrows(() => kiln.sum(x, 5), 'sum', '5', 'rank 2');
    expectThrows(() => kiln.mean(x, -3), 'mean', '-3');
    expectThrows(() => kiln.argmax(x, 2), 'argmax', '2');
    expectThrows(() => kiln.softmax(x, 2), 'softmax', '2');
    expectThrows(() => kiln.concat([x, x], 2), 'concat', '2');
    expectThrows(() => kiln.stack([x, x], 4), 'stack', '4');
    expectThrows(() => kiln.split(x, 2, 3), 'split', '3');
    expectThrows(() => kiln.gather(x, i32(0), 2), 'gather', '2');
    expectThrows(() => kiln.unsqueeze(x, 4), 'unsqueeze', '4');
    expectThrows(() => kiln.squeeze(x, 0), 'squeeze', '[2, 3]');
    expectThrows(() => kiln.permute(x, [0, 2]), 'permute', '2');
    expectThrows(() => kiln.permute(x, [0, 0]), 'permute', '[0, 0]');
    expectThrows(() => kiln.permute(x, [0]), 'permute', '[0]');
  });

  it('out-of-range indices: gather, scatterAdd, oneHot, slice', () => {
    const x = kiln.zeros([3, 2]);
    expectThrows(() => kiln.gather(x, i32(0, 10)), 'gather', '10', '3');
    expectThrows(() => kiln.gather(x, i32(-1)), 'gather', '-1');
    expectThrows(() => kiln.gather(x, i32(2), 1), 'gather', '2');
    expectThrows(() => kiln.scatterAdd(x, i32(3), kiln.zeros([1, 2])), 'scatterAdd', '3');
    expectThrows(() => kiln.oneHot(i32(0, 5), 3), 'oneHot', '5', '3');
    expectThrows(() => kiln.oneHot(i32(-1), 3), 'oneHot', '-1');
    expectThrows(() => kiln.slice(x, [2, 0], [2, 2]), 'slice', '[3, 2]');
    expectThrows(() => kiln.slice(x, [0, 0], [1, 3]), 'slice', '[3, 2]');
    expectThrows(() => kiln.slice(x, [0], [1]), 'slice');
  });

  it('bad sizes: reshape, split, pad, tensor', () => {
    const x = kiln.zeros([2, 3]);
    expectThrows(() => kiln.reshape(x, [4, 2]), 'reshape', '[2, 3]', '[4, 2]');
    expectThrows(() => kiln.reshape(x, [-1, -1]), 'reshape', '[-1, -1]');
    expectThrows(() => kiln.reshape(x, [4, -1]), 'reshape', '[4, -1]');
    expectThrows(() => kiln.reshape(x, [-2, 3]), 'reshape');
    expectThrows(() => kiln.split(x, 4, 1), 'split', '4');
    expectThrows(() => kiln.split(x, [1, 1], 1), 'split', '[1, 1]');
    expectThrows(() => kiln.pad(x, [[1, 1]]), 'pad', '[2, 3]');
    expectThrows(() => kiln.pad(x, [[1, 1], [-1, 0]]), 'pad');
    expectThrows(() => kiln.pad(x, [1, 1] as unknown as Array<[number, number]>), 'pad');
    expectThrows(() => kiln.tensor([1, 2, 3], [2, 2]), 'tensor', '[2, 2]');
    expectThrows(() => kiln.tensor([[1, 2], [3]]), 'tensor');
  });

  it('non-integer sizes, axes and indices are rejected rather than truncated', () => {
    const x = kiln.zeros([4]);
    const m = kiln.zeros([3, 2]);
    expectAllThrow([
      ['reshape(x, [2.5, 2])', 'reshape', () => kiln.reshape(x, [2.5, 2])],
      ['slice(x, [0.5], [1])', 'slice', () => kiln.slice(x, [0.5], [1])],
      ['sum(m, 0.5)', 'sum', () => kiln.sum(m, 0.5)],
      ['expand(ones([1]), [2.5])', 'expand', () => kiln.expand(kiln.ones([1]), [2.5])],
      ['pad(x, [[0.5, 1]])', 'pad', () => kiln.pad(x, [[0.5, 1]])],
      ['split(x, [1.5, 2.5])', 'split', () => kiln.split(x, [1.5, 2.5])],
      ['softmax(m, 0.5)', 'softmax', () => kiln.softmax(m, 0.5)],
      ['unsqueeze(x, 0.5)', 'unsqueeze', () => kiln.unsqueeze(x, 0.5)],
      ['oneHot(i, 2.5)', 'oneHot', () => kiln.oneHot(i32(1), 2.5)],
      ['eye(2.5)', 'eye', () => kiln.eye(2.5)],
      ['zeros([2.5])', 'zeros', () => kiln.zeros([2.5])],
      ["sum(m, 'a')", 'sum', () => kiln.sum(m, 'a' as unknown as number)],
    ]);
  });

  it('negative sizes throw, naming the op that was called', () => {
    expectAllThrow([
      ['zeros([-1, 2])', 'zeros', () => kiln.zeros([-1, 2])],
      ['ones([2, -3])', 'ones', () => kiln.ones([2, -3])],
      ['full([-1], 3)', 'full', () => kiln.full([-1], 3)],
      ['randu([-2])', 'randu', () => kiln.randu([-2])],
      ['randn([-2])', 'randn', () => kiln.randn([-2])],
      ['eye(-1)', 'eye', () => kiln.eye(-1)],
      ['eye(2, -3)', 'eye', () => kiln.eye(2, -3)],
      ['oneHot(i, -1)', 'oneHot', () => kiln.oneHot(i32(0), -1)],
      ['expand(x, [-1])', 'expand', () => kiln.expand(kiln.ones([1]), [-1])],
      ['tensor([], [-1])', 'tensor', () => kiln.tensor([], [-1])],
    ]);
  });

  it('a disposed tensor used in an op throws, mentioning "disposed"', () => {
    const t = kiln.ones([2, 2]);
    const live = kiln.ones([2, 2]);
    t.dispose();
    expectThrows(() => kiln.exp(t), 'disposed');
    // The op and the argument are named too (issue 13, class 8).
    expectThrows(() => kiln.exp(t), /^exp: argument 'x': Tensor is disposed/);
    expectThrows(() => kiln.add(live, t), /^add: argument 'b': Tensor is disposed/);
    expectThrows(() => kiln.add(t, 1), 'disposed');
    expectThrows(() => kiln.matmul(live, t), 'disposed');
    expectThrows(() => kiln.concat([live, t]), 'disposed');
    expectThrows(() => kiln.where(live.greater(0), t, 0), 'disposed');
    expectThrows(() => t.sum(), 'disposed');
    expectThrows(() => t.reshape([4]), 'disposed');
    expectThrows(() => t.dataSync(), 'disposed');
    expect(live.isDisposed).toBe(false);
  });

  it('non-tensor arguments throw, naming the op and the argument', () => {
    const x = kiln.ones([2]);
    expectThrows(() => kiln.exp([1, 2] as unknown as Tensor), 'exp', 'Tensor');
    expectThrows(() => kiln.relu(null as unknown as Tensor), 'relu', 'Tensor');
    expectThrows(() => kiln.sum(undefined as unknown as Tensor), 'sum', 'Tensor');
    expectThrows(() => kiln.add([1, 2] as unknown as Tensor, x), 'add', 'Tensor');
    expectThrows(() => kiln.add(x, '1' as unknown as Tensor), 'add', 'Tensor');
    expectThrows(() => kiln.matmul(x, 3 as unknown as Tensor), 'matmul', 'Tensor');
    expectThrows(() => kiln.concat([x, [1, 2] as unknown as Tensor]), 'concat', 'Tensor');
    expectThrows(() => kiln.gather(x, [0] as unknown as Tensor), 'gather', 'Tensor');
    expectThrows(() => kiln.where(true as unknown as Tensor, x, x), 'where', 'Tensor');
    expectThrows(() => kiln.softmax({} as unknown as Tensor), 'softmax', 'Tensor');
    expectThrows(() => kiln.tidy('not a function' as unknown as () => void), 'tidy');
  });

  it('other misuse: empty lists, rank-0 matmul, reductions of empty dims, unknown backend', () => {
    expectThrows(() => kiln.concat([]), 'concat');
    expectThrows(() => kiln.stack([]), 'stack');
    expectThrows(() => kiln.concat([kiln.scalar(1), kiln.scalar(2)]), 'concat');
    expectThrows(() => kiln.matmul(kiln.scalar(1), kiln.ones([1])), 'matmul', '[]');
    expectThrows(() => kiln.max(kiln.zeros([0, 3]), 0), 'max', '[0, 3]');
    expectThrows(() => kiln.argmin(kiln.zeros([0])), 'argmin', '[0]');
    expectThrows(() => kiln.gather(kiln.scalar(1), i32(0)), 'gather');
    expectThrows(() => kiln.setBackend('nonexistent' as kiln.BackendName), 'setBackend', 'nonexistent');
    expect(kiln.getBackend()).toBe(backendName);
  });

  it('failed ops leak nothing and leave the library usable', async () => {
    const x = kiln.ones([2, 3]);
    const z4 = kiln.zeros([4]);
    const zi = kiln.zeros([2], 'int32');
    const zi23 = kiln.zeros([2, 3], 'int32');
    const idx = i32(9);
    const gone = kiln.ones([2]);
    gone.dispose();
    const mask = kiln.ones([2, 3]).greater(0);
    const before = kiln.memory();
    const bad: Array<() => unknown> = [
      () => kiln.add(x, z4),
      () => kiln.add(zi, 1), // the number becomes a temporary scalar tensor
      () => kiln.where(x, 1, 0), // two temporaries
      () => kiln.sum(x, 7),
      () => kiln.matmul(x, x),
      surfaced(() => kiln.gather(x, idx)), // the GPU reports a bad index at the next sync
      () => kiln.concat([x, zi23]),
      () => kiln.split(x, 4),
      () => kiln.add(1, gone), // the temporary for 1 is made before the disposed operand is seen
      () => kiln.where(mask, 1, gone),
      () =>
        kiln.tidy(() => {
          kiln.exp(x);
          throw new Error('user error');
        }),
    ];
    for (let i = 0; i < 50; i++) for (const fn of bad) expect(fn).toThrow();
    expect(kiln.memory()).toEqual(before);
    expect(Array.from(await kiln.add(x, 1).data())).toEqual([2, 2, 2, 2, 2, 2]);
  });

  it('inputs that could abort the process fail cleanly in a child process', async () => {
    const probe = fileURLToPath(new URL('./fixtures/crash-probe.ts', import.meta.url));
    const viteNode = fileURLToPath(new URL('../node_modules/vite-node/vite-node.mjs', import.meta.url));
    const cases = [
      'eye(-1)',
      'oneHot(indices, -1)',
      'full([2**31, 2**31, 2**31], 0)',
      'randn([2**40, 2**40])',
      'arange(0, 2**70)',
      // a Rust panic (deliberate, via the native test hook) must surface as an Error too
      ...(backendName === 'native' ? ['debugPanic(main thread)', 'debugPanic(thread pool)'] : []),
    ];
    const run = (c: string) =>
      new Promise<{ c: string; code: number | null; signal: string | null; out: string; err: string }>((resolve) => {
        execFile(process.execPath, [viteNode, probe, backendName, c], { timeout: 30_000 }, (error, stdout, stderr) => {
          resolve({ c, code: error ? ((error as { code?: number }).code ?? null) : 0, signal: (error as { signal?: string } | null)?.signal ?? null, out: stdout, err: stderr });
        });
      });
    const results = await Promise.all(cases.map(run));
    const problems: string[] = [];
    for (const r of results) {
      const line = r.out.split('\n').find((l) => l.startsWith('PROBE '));
      if (!line) {
        problems.push(`${r.c}: the process died (exit ${r.code}, signal ${r.signal}): ${r.err.split('\n').slice(0, 3).join(' | ')}`);
        continue;
      }
      const p = JSON.parse(line.slice(6)) as { threw: boolean; message: string; stillWorks: boolean };
      if (!p.threw) problems.push(`${r.c}: did not throw`);
      if (!p.stillWorks) problems.push(`${r.c}: the library misbehaves afterwards`);
      const op = r.c.slice(0, r.c.indexOf('('));
      if (op !== 'debugPanic') {
        if (!p.message.includes(op)) problems.push(`${r.c}: message does not name '${op}': ${p.message}`);
        if (/internal error/i.test(p.message)) problems.push(`${r.c}: a panic, not a validation error: ${p.message}`);
      }
    }
    expect(problems, problems.join('\n')).toEqual([]);
  });
});
