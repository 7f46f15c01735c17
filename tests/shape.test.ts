/**
 * Views and data movement: reshape, transpose/permute, slice, expand/broadcastTo, contiguous,
 * squeeze/unsqueeze, cast, concat, stack, split, gather, scatterAdd, oneHot, pad, and every op
 * applied to non-contiguous views.
 */
import { expect, it } from 'vitest';
import * as kiln from '../ts/index.js';
import type { Tensor } from '../ts/index.js';
import { forEachBackend } from './backends.js';
import { T, Tb, Ti, assertClose, expectTensor, randIntND, randND, read, toND } from './helpers.js';
import * as ref from './reference.js';
import { tf, tfEval, tfT, tfTi } from './tf.js';

const EXACT = { exact: true } as const;

forEachBackend(() => {
  // ---- reshape -----------------------------------------------------------------------------

  it('reshape keeps row-major order, infers -1, and handles scalars and size 0', async () => {
    const x = randND([2, 3, 4], 1);
    const X = T(x);
    for (const [shape, want] of [
      [[6, 4], [6, 4]],
      [[-1], [24]],
      [[4, -1], [4, 6]],
      [[2, -1, 2], [2, 6, 2]],
      [[1, 24, 1], [1, 24, 1]],
      [[24], [24]],
    ] as Array<[number[], number[]]>) {
      await expectTensor(kiln.reshape(X, shape), { shape: want, dtype: 'float32', values: x.data, ...EXACT }, `reshape to [${shape}]`);
    }
    await expectTensor(X.flatten(), { shape: [24], values: x.data, ...EXACT }, 'flatten');
    await expectTensor(kiln.reshape(kiln.tensor([7]), []), { shape: [], values: [7], ...EXACT }, 'to scalar');
    await expectTensor(kiln.reshape(kiln.scalar(7), [1, 1]), { shape: [1, 1], values: [7], ...EXACT }, 'from scalar');
    await expectTensor(kiln.reshape(kiln.zeros([0, 3]), [3, 0, 5]), { shape: [3, 0, 5], values: [] }, 'size 0');
    await expectTensor(kiln.reshape(kiln.zeros([0, 3]), [-1, 3]), { shape: [0, 3], values: [] }, 'size 0 with -1');
  });

  it('reshape of a non-contiguous view follows the view order', async () => {
    const x = randND([3, 4], 2);
    const X = T(x);
    await expectTensor(X.transpose().reshape([-1]), { shape: [12], values: ref.transpose(x).data, ...EXACT }, 'transposed');
    await expectTensor(X.slice([1, 1], [2, 2]).reshape([4]), { values: ref.slice(x, [1, 1], [2, 2]).data, ...EXACT }, 'sliced');
    await expectTensor(X.slice([0, 0], [1, 4]).expand([2, 4]).reshape([8]), { values: [...x.data.slice(0, 4), ...x.data.slice(0, 4)], ...EXACT }, 'expanded');
  });

  // ---- transpose / permute -----------------------------------------------------------------

  it('transpose reverses dims by default; transpose(perm) and permute reorder them', async () => {
    const x = randND([2, 3, 4], 3);
    const X = T(x);
    await expectTensor(X.transpose(), { shape: [4, 3, 2], values: ref.transpose(x), ...EXACT }, 'default');
    for (const perm of [[0, 1, 2], [2, 0, 1], [1, 2, 0], [0, 2, 1], [-1, 0, 1]]) {
      const p = perm.map((d) => (d < 0 ? d + 3 : d));
      await expectTensor(kiln.transpose(X, perm), { values: ref.permute(x, p), ...EXACT }, `transpose [${perm}]`);
      await expectTensor(X.permute(perm), { values: ref.permute(x, p), ...EXACT }, `permute [${perm}]`);
      const want = tfEval(() => tf.transpose(tfT(x), p));
      await expectTensor(kiln.permute(X, perm), { shape: want.shape, values: want.data, ...EXACT }, `permute [${perm}] vs tfjs`);
    }
    await expectTensor(kiln.transpose(kiln.tensor([1, 2, 3])), { shape: [3], values: [1, 2, 3], ...EXACT }, '1-D');
    await expectTensor(kiln.transpose(kiln.scalar(4)), { shape: [], values: [4], ...EXACT }, 'scalar');
    // transpose of a transpose is the original
    await expectTensor(X.permute([2, 0, 1]).permute([1, 2, 0]), { values: x, ...EXACT }, 'round trip');
  });

  // ---- slice -------------------------------------------------------------------------------

  it('slice with begin/size, -1 sizes, omitted sizes, size 0, and slices of views', async () => {
    const x = randND([4, 5, 6], 4);
    const X = T(x);
    for (const [begin, size] of [
      [[0, 0, 0], [4, 5, 6]],
      [[1, 2, 3], [2, 2, 2]],
      [[1, 0, 2], [-1, -1, 3]],
      [[3, 4, 5], [1, 1, 1]],
      [[2, 1, 0], [0, 3, 6]],
      [[4, 0, 0], [0, 5, 6]],
    ]) {
      await expectTensor(X.slice(begin, size), { values: ref.slice(x, begin, size), ...EXACT }, `slice [${begin}] [${size}]`);
      const full = size.map((s, d) => (s < 0 ? x.shape[d] - begin[d] : s));
      const want = tfEval(() => tf.slice(tfT(x), begin, full));
      await expectTensor(kiln.slice(X, begin, size), { shape: want.shape, values: want.data, ...EXACT }, `slice vs tfjs`);
    }
    await expectTensor(X.slice([1, 2, 3]), { values: ref.slice(x, [1, 2, 3], [-1, -1, -1]), ...EXACT }, 'omitted size');
    const s1 = X.slice([1, 1, 1], [3, 3, 4]);
    await expectTensor(s1.slice([1, 0, 2], [2, 2, 2]), { values: ref.slice(x, [2, 1, 3], [2, 2, 2]), ...EXACT }, 'slice of slice');
    await expectTensor(X.transpose().slice([1, 0, 2], [3, 2, 2]), { values: ref.slice(ref.transpose(x), [1, 0, 2], [3, 2, 2]), ...EXACT }, 'slice of transposed');
  });

  // ---- expand / broadcastTo / contiguous ---------------------------------------------------

  it('expand/broadcastTo grow size-1 and missing leading dims', async () => {
    for (const [from, to] of [
      [[3, 1], [3, 4]],
      [[4], [2, 3, 4]],
      [[], [2, 2]],
      [[1, 3, 1], [2, 3, 5]],
      [[2, 3], [2, 3]],
      [[1], [0]],
      [[1, 3], [0, 3]],
    ] as Array<[number[], number[]]>) {
      const x = randND(from, 5);
      const want = ref.broadcastTo(x, to);
      await expectTensor(kiln.expand(T(x), to), { shape: to, values: want, ...EXACT }, `expand [${from}] -> [${to}]`);
      await expectTensor(T(x).broadcastTo(to), { shape: to, values: want, ...EXACT }, `broadcastTo [${from}] -> [${to}]`);
      await expectTensor(T(x).expand(to).contiguous(), { shape: to, values: want, ...EXACT }, `expand [${from}] -> [${to}], contiguous`);
    }
    // expanding a non-contiguous view
    const y = randND([3, 1, 4], 6);
    const yt = ref.permute(y, [2, 1, 0]);
    await expectTensor(T(y).permute([2, 1, 0]).expand([2, 4, 5, 3]), { shape: [2, 4, 5, 3], values: ref.broadcastTo(yt, [2, 4, 5, 3]), ...EXACT }, 'expand of permuted');
  });

  it('contiguous copies views faithfully and leaves contiguous tensors as they are', async () => {
    const x = randND([3, 4, 5], 6);
    const X = T(x);
    await expectTensor(X.contiguous(), { values: x, ...EXACT }, 'already contiguous');
    await expectTensor(X.permute([1, 2, 0]).contiguous(), { values: ref.permute(x, [1, 2, 0]), ...EXACT }, 'permuted');
    await expectTensor(kiln.contiguous(X.slice([1, 1, 1], [2, 3, 3])), { values: ref.slice(x, [1, 1, 1], [2, 3, 3]), ...EXACT }, 'sliced');
  });

  // ---- squeeze / unsqueeze -----------------------------------------------------------------

  it('squeeze removes size-1 dims (all or the given ones); unsqueeze/expandDims insert one', async () => {
    const x = randND([1, 3, 1, 2], 7);
    const X = T(x);
    await expectTensor(X.squeeze(), { shape: [3, 2], values: x.data, ...EXACT }, 'squeeze all');
    await expectTensor(kiln.squeeze(X, 0), { shape: [3, 1, 2], values: x.data, ...EXACT }, 'squeeze 0');
    await expectTensor(kiln.squeeze(X, [2, 0]), { shape: [3, 2], values: x.data, ...EXACT }, 'squeeze [2, 0]');
    await expectTensor(kiln.squeeze(X, -2), { shape: [1, 3, 2], values: x.data, ...EXACT }, 'squeeze -2');
    await expectTensor(kiln.squeeze(kiln.tensor([[5]])), { shape: [], values: [5], ...EXACT }, 'to scalar');
    const y = randND([3, 2], 8);
    const Y = T(y);
    await expectTensor(kiln.unsqueeze(Y, 0), { shape: [1, 3, 2], values: y.data, ...EXACT }, 'unsqueeze 0');
    await expectTensor(Y.unsqueeze(1), { shape: [3, 1, 2], values: y.data, ...EXACT }, 'unsqueeze 1');
    await expectTensor(Y.unsqueeze(2), { shape: [3, 2, 1], values: y.data, ...EXACT }, 'unsqueeze 2');
    await expectTensor(Y.unsqueeze(-1), { shape: [3, 2, 1], values: y.data, ...EXACT }, 'unsqueeze -1');
    await expectTensor(Y.expandDims(), { shape: [1, 3, 2], values: y.data, ...EXACT }, 'expandDims');
    await expectTensor(kiln.unsqueeze(kiln.scalar(3), 0), { shape: [1], values: [3], ...EXACT }, 'unsqueeze scalar');
    // on views
    await expectTensor(Y.transpose().unsqueeze(1), { shape: [2, 1, 3], values: ref.transpose(y).data, ...EXACT }, 'unsqueeze transposed');
    await expectTensor(Y.transpose().unsqueeze(1).squeeze(1), { shape: [2, 3], values: ref.transpose(y).data, ...EXACT }, 'squeeze it back');
  });

  // ---- cast --------------------------------------------------------------------------------

  it('cast: float -> int truncates toward zero, -> bool is x != 0, and back', async () => {
    const f = kiln.tensor([2.7, -2.7, 0.5, -0.5, 0, -0, 3, -1e3, 1e6 + 0.5]);
    await expectTensor(kiln.cast(f, 'int32'), { dtype: 'int32', values: [2, -2, 0, 0, 0, 0, 3, -1000, 1000000], ...EXACT }, 'float -> int');
    expect((await kiln.cast(f, 'int32').data()) instanceof Int32Array).toBe(true);
    await expectTensor(kiln.cast(kiln.tensor([0, -0, 0.5, -2, Infinity, NaN]), 'bool'), { dtype: 'bool', values: [0, 0, 1, 1, 1, 1], ...EXACT }, 'float -> bool');
    const i = kiln.tensor(Int32Array.from([-3, 0, 7, 2147483647]));
    await expectTensor(kiln.cast(i, 'float32'), { dtype: 'float32', values: [-3, 0, 7, 2147483648], ...EXACT }, 'int -> float');
    await expectTensor(i.cast('bool'), { dtype: 'bool', values: [1, 0, 1, 1], ...EXACT }, 'int -> bool');
    const b = kiln.tensor([true, false, true]);
    await expectTensor(b.cast('float32'), { dtype: 'float32', values: [1, 0, 1], ...EXACT }, 'bool -> float');
    await expectTensor(b.cast('int32'), { dtype: 'int32', values: [1, 0, 1], ...EXACT }, 'bool -> int');
    await expectTensor(f.cast('float32'), { dtype: 'float32', values: await read(f), ...EXACT }, 'same dtype');
    // cast of a view
    const x = randND([3, 4], 9, -5, 5);
    await expectTensor(T(x).transpose().cast('int32'), { shape: [4, 3], values: ref.transpose(x).data.map(Math.trunc), ...EXACT }, 'transposed');
    // vs tfjs
    const want = tfEval(() => tf.cast(tfT(x), 'int32'));
    await expectTensor(T(x).cast('int32'), { values: want.data, ...EXACT }, 'vs tfjs');
  });

  // ---- concat / stack ----------------------------------------------------------------------

  it('concat along any axis, including negative, size-0 parts and a single input', async () => {
    const base = [2, 3, 4];
    for (const axis of [0, 1, 2, -1, -2]) {
      const a = ((axis % 3) + 3) % 3;
      const parts = [1, 2, 0, 3].map((n, i) => randND(base.map((d, k) => (k === a ? n : d)), 10 + i));
      const want = ref.concat(parts, axis);
      await expectTensor(kiln.concat(parts.map(T), axis), { shape: want.shape, values: want, ...EXACT }, `concat axis ${axis}`);
      const nonEmpty = parts.filter((p) => p.shape[a] > 0);
      const wantTf = tfEval(() => tf.concat(nonEmpty.map(tfT), axis));
      await expectTensor(kiln.concat(nonEmpty.map(T), axis), { shape: wantTf.shape, values: wantTf.data, ...EXACT }, `concat axis ${axis} vs tfjs`);
    }
    const one = randND([2, 2], 20);
    await expectTensor(kiln.concat([T(one)]), { values: one, ...EXACT }, 'single input');
    await expectTensor(kiln.concat([T(one), T(one)]), { shape: [4, 2], values: ref.concat([one, one], 0), ...EXACT }, 'default axis 0');
  });

  it('concat and stack accept views and int32/bool tensors', async () => {
    const x = randND([3, 4], 21);
    const y = randND([4, 3], 22);
    const X = T(x);
    const Y = T(y);
    const parts: Array<[Tensor, ref.ND]> = [
      [Y.transpose(), ref.transpose(y)],
      [X.slice([0, 1], [3, 2]), ref.slice(x, [0, 1], [3, 2])],
      [X.slice([1, 0], [1, 4]).expand([3, 4]), ref.broadcastTo(ref.slice(x, [1, 0], [1, 4]), [3, 4])],
      [X, x],
    ];
    await expectTensor(kiln.concat(parts.map((p) => p[0]), 1), { values: ref.concat(parts.map((p) => p[1]), 1), ...EXACT }, 'concat views');
    const sq = parts.filter((p) => p[0].shape[1] === 4);
    await expectTensor(kiln.stack(sq.map((p) => p[0]), 1), { values: ref.stack(sq.map((p) => p[1]), 1), ...EXACT }, 'stack views');
    const ints = randIntND([2, 3], 23, -9, 9);
    await expectTensor(kiln.concat([Ti(ints), Ti(ints).slice([0, 1], [2, 2])], 1), {
      dtype: 'int32',
      values: ref.concat([ints, ref.slice(ints, [0, 1], [2, 2])], 1),
      ...EXACT,
    }, 'int32');
    const bools = randIntND([3], 24, 0, 2);
    await expectTensor(kiln.stack([Tb(bools), Tb(bools)]), { dtype: 'bool', shape: [2, 3], values: [...bools.data, ...bools.data], ...EXACT }, 'bool');
  });

  it('stack along a new axis (0, middle, last, negative) matches the reference and tfjs', async () => {
    const xs = [0, 1, 2].map((i) => randND([2, 3], 30 + i));
    for (const axis of [0, 1, 2, -1, -3]) {
      const want = ref.stack(xs, axis);
      await expectTensor(kiln.stack(xs.map(T), axis), { shape: want.shape, values: want, ...EXACT }, `stack axis ${axis}`);
      const wantTf = tfEval(() => tf.stack(xs.map(tfT), axis));
      await expectTensor(kiln.stack(xs.map(T), axis), { values: wantTf.data, ...EXACT }, `stack axis ${axis} vs tfjs`);
    }
    await expectTensor(kiln.stack([kiln.scalar(1), kiln.scalar(2)]), { shape: [2], values: [1, 2], ...EXACT }, 'stack scalars');
  });

  // ---- split -------------------------------------------------------------------------------

  it('split into equal counts or given sizes, along any axis; pieces concat back', async () => {
    const x = randND([4, 6, 3], 40);
    const X = T(x);
    const check = async (parts: Tensor[], sizes: number[], axis: number, label: string) => {
      expect(parts.length, label).toBe(sizes.length);
      const a = axis < 0 ? axis + 3 : axis;
      let begin = 0;
      for (let i = 0; i < parts.length; i++) {
        const b = [0, 0, 0];
        b[a] = begin;
        const s = [-1, -1, -1];
        s[a] = sizes[i];
        await expectTensor(parts[i], { values: ref.slice(x, b, s), ...EXACT }, `${label} part ${i}`);
        begin += sizes[i];
      }
      await expectTensor(kiln.concat(parts, axis), { values: x, ...EXACT }, `${label} round trip`);
    };
    await check(kiln.split(X, 2), [2, 2], 0, 'count 2 axis 0');
    await check(kiln.split(X, 3, 1), [2, 2, 2], 1, 'count 3 axis 1');
    await check(X.split([1, 4, 1], 1), [1, 4, 1], 1, 'sizes axis 1');
    await check(X.split([0, 3], -1), [0, 3], -1, 'sizes with 0, axis -1');
    await check(kiln.split(X, 1, 2), [3], 2, 'count 1');
    const want = tfEval(() => tf.split(tfT(x), [1, 4, 1], 1)[1]);
    await expectTensor(X.split([1, 4, 1], 1)[1], { shape: want.shape, values: want.data, ...EXACT }, 'vs tfjs');
    // split of a transposed view
    const parts = X.transpose().split(3, 0);
    await expectTensor(parts[2], { values: ref.slice(ref.transpose(x), [2, 0, 0], [1, 6, 4]), ...EXACT }, 'split of transposed');
  });

  // ---- gather ------------------------------------------------------------------------------

  it('gather with indices of any shape along axis 0, 1 and -1 matches the reference and tfjs', async () => {
    const x = randND([5, 4, 3], 50);
    const X = T(x);
    const indexShapes: number[][] = [[], [1], [3], [2, 3], [2, 2, 2]];
    for (const axis of [0, 1, -1]) {
      const dim = x.shape[(axis + 3) % 3];
      for (const [n, shape] of indexShapes.entries()) {
        const idx = randIntND(shape, 60 + n, 0, dim);
        const want = ref.gather(x, idx, axis);
        await expectTensor(kiln.gather(X, Ti(idx), axis), { shape: want.shape, dtype: 'float32', values: want, ...EXACT }, `gather axis ${axis} indices [${shape}]`);
        const wantTf = tfEval(() => tf.gather(tfT(x), tfTi(idx), (axis + 3) % 3));
        await expectTensor(X.gather(Ti(idx), axis), { shape: wantTf.shape, values: wantTf.data, ...EXACT }, `gather axis ${axis} [${shape}] vs tfjs`);
      }
    }
    // repeated indices, default axis, indexSelect alias, int32 and bool data
    const rep = kiln.tensor(Int32Array.from([2, 2, 0, 2]));
    await expectTensor(kiln.gather(X, rep), { values: ref.gather(x, { shape: [4], data: [2, 2, 0, 2] }, 0), ...EXACT }, 'repeated');
    await expectTensor(X.indexSelect(1, rep.slice([2], [1])), { values: ref.gather(x, { shape: [1], data: [0] }, 1), ...EXACT }, 'indexSelect');
    const ints = randIntND([4, 3], 70, -50, 50);
    await expectTensor(kiln.gather(Ti(ints), kiln.tensor(Int32Array.from([3, 0])), 0), { dtype: 'int32', values: ref.gather(ints, { shape: [2], data: [3, 0] }, 0), ...EXACT }, 'int32 data');
    await expectTensor(kiln.gather(kiln.tensor([true, false, true]), kiln.tensor(Int32Array.from([1, 2])), 0), { dtype: 'bool', values: [0, 1], ...EXACT }, 'bool data');
    await expectTensor(kiln.gather(X, kiln.tensor(new Int32Array(0), [0]), 1), { shape: [5, 0, 3], values: [] }, 'no indices');
  });

  it('gather from views and with non-contiguous indices', async () => {
    const x = randND([6, 5], 80);
    const X = T(x);
    const idx = randIntND([3, 2], 81, 0, 5);
    const I = Ti(idx);
    await expectTensor(kiln.gather(X.transpose(), I, 0), { values: ref.gather(ref.transpose(x), idx, 0), ...EXACT }, 'transposed x');
    await expectTensor(kiln.gather(X.slice([1, 0], [4, 5]), I, 1), { values: ref.gather(ref.slice(x, [1, 0], [4, 5]), idx, 1), ...EXACT }, 'sliced x');
    await expectTensor(kiln.gather(X, I.transpose(), 0), { values: ref.gather(x, ref.transpose(idx), 0), ...EXACT }, 'transposed indices');
    const e = I.slice([0, 0], [1, 2]).expand([4, 2]);
    await expectTensor(kiln.gather(X, e, 1), { values: ref.gather(x, ref.broadcastTo(ref.slice(idx, [0, 0], [1, 2]), [4, 2]), 1), ...EXACT }, 'expanded indices');
  });

  // ---- scatterAdd --------------------------------------------------------------------------

  it('scatterAdd accumulates repeated indices and adds into the base', async () => {
    const base = kiln.tensor([[1, 1], [2, 2], [3, 3]]);
    const idx = kiln.tensor(Int32Array.from([0, 2, 0, 0]));
    const upd = kiln.tensor([[1, 2], [10, 20], [100, 200], [1000, 2000]]);
    await expectTensor(kiln.scatterAdd(base, idx, upd), { shape: [3, 2], dtype: 'float32', values: [1102, 2203, 2, 2, 13, 23], ...EXACT }, 'axis 0');
    const idx1 = kiln.tensor(Int32Array.from([1, 1, 0]));
    const upd1 = kiln.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9]]);
    await expectTensor(base.scatterAdd(idx1, upd1, 1), { values: [1 + 3, 1 + 1 + 2, 2 + 6, 2 + 4 + 5, 3 + 9, 3 + 7 + 8], ...EXACT }, 'axis 1 (method)');
  });

  it('scatterAdd matches the reference for multi-dimensional indices on every axis', async () => {
    const shape = [4, 5, 3];
    for (const axis of [0, 1, 2, -1]) {
      const a = (axis + 3) % 3;
      const idx = randIntND([2, 3], 90 + a, 0, shape[a]);
      const updShape = [...shape.slice(0, a), 2, 3, ...shape.slice(a + 1)];
      const base = randND(shape, 95 + a);
      const upd = randND(updShape, 99 + a);
      await expectTensor(kiln.scatterAdd(T(base), Ti(idx), T(upd), axis), { shape, values: ref.scatterAdd(base, idx, upd, axis), atol: 1e-6, rtol: 1e-6 }, `axis ${axis}`);
    }
  });

  it('scatterAdd is the adjoint of gather: <gather(x, i), u> == <x, scatterAdd(0, i, u)>', async () => {
    const dot = (a: number[], b: number[]) => a.reduce((s, v, i) => s + v * b[i], 0);
    let seed = 110;
    for (const [xShape, iShape, axis] of [
      [[7, 3], [10], 0],
      [[4, 6, 2], [3, 5], 1],
      [[3, 4, 5], [2, 2, 2], -1],
    ] as Array<[number[], number[], number]>) {
      const a = (axis + xShape.length) % xShape.length;
      const x = randND(xShape, seed++);
      const idx = randIntND(iShape, seed++, 0, xShape[a]);
      const g = kiln.gather(T(x), Ti(idx), axis);
      const u = randND([...g.shape], seed++);
      const lhs = dot(await read(g), u.data);
      const s = kiln.scatterAdd(kiln.zeros(xShape), Ti(idx), T(u), axis);
      expect([...s.shape]).toEqual(xShape);
      const rhs = dot(x.data, await read(s));
      expect(Math.abs(lhs - rhs), `axis ${axis}: ${lhs} vs ${rhs}`).toBeLessThan(1e-4 * (1 + Math.abs(lhs)));
    }
  });

  it('scatterAdd with views as base, indices and updates', async () => {
    const base = randND([3, 4], 120);
    const upd = randND([3, 2], 121);
    const idx = { shape: [2, 1], data: [3, 3] };
    const want = ref.scatterAdd(ref.transpose(base), idx, { shape: [2, 1, 3], data: ref.transpose(upd).data }, 0);
    // base: transposed view; indices: a transposed [1, 2] view; updates: a transposed view reshaped
    const got = kiln.scatterAdd(T(base).transpose(), Ti({ shape: [1, 2], data: [3, 3] }).transpose(), T(upd).transpose().unsqueeze(1), 0);
    await expectTensor(got, { shape: [4, 3], values: want, atol: 1e-6, rtol: 1e-6 }, 'views');
  });

  // ---- oneHot ------------------------------------------------------------------------------

  it('oneHot for 1-D and 2-D indices, with custom on/off values; matches tfjs', async () => {
    const idx = kiln.tensor(Int32Array.from([0, 2, 1, 2]));
    await expectTensor(kiln.oneHot(idx, 3), { shape: [4, 3], dtype: 'float32', values: [1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1], ...EXACT }, '1-D');
    await expectTensor(idx.oneHot(4, 5, -1), { shape: [4, 4], values: ref.oneHot({ shape: [4], data: [0, 2, 1, 2] }, 4, 5, -1), ...EXACT }, 'on/off');
    const i2 = randIntND([2, 3], 130, 0, 5);
    await expectTensor(kiln.oneHot(Ti(i2), 5), { shape: [2, 3, 5], values: ref.oneHot(i2, 5), ...EXACT }, '2-D');
    const want = tfEval(() => tf.oneHot(tfTi(i2), 5));
    await expectTensor(kiln.oneHot(Ti(i2), 5), { values: want.data, ...EXACT }, 'vs tfjs');
    await expectTensor(kiln.oneHot(Ti(i2).transpose(), 5), { shape: [3, 2, 5], values: ref.oneHot(ref.transpose(i2), 5), ...EXACT }, 'transposed indices');
    await expectTensor(kiln.oneHot(kiln.scalar(1, 'int32'), 3), { shape: [3], values: [0, 1, 0], ...EXACT }, 'scalar index');
  });

  // ---- pad ---------------------------------------------------------------------------------

  it('pad in every dimension with a value; matches the reference and tfjs', async () => {
    const cases: Array<[number[], Array<[number, number]>, number]> = [
      [[3], [[2, 1]], 0],
      [[2, 3], [[1, 0], [0, 2]], -1.5],
      [[2, 3, 4], [[0, 0], [1, 1], [2, 0]], 7],
      [[2, 2], [[0, 0], [0, 0]], 9],
      [[0, 2], [[1, 1], [0, 1]], 3],
    ];
    let seed = 140;
    for (const [shape, paddings, value] of cases) {
      const x = randND(shape, seed++);
      const want = ref.pad(x, paddings, value);
      await expectTensor(kiln.pad(T(x), paddings, value), { shape: want.shape, values: want, ...EXACT }, `pad [${shape}] ${JSON.stringify(paddings)}`);
      if (x.data.length > 0) {
        const wantTf = tfEval(() => tf.pad(tfT(x), paddings, value));
        await expectTensor(T(x).pad(paddings, value), { values: wantTf.data, ...EXACT }, 'vs tfjs');
      }
    }
    await expectTensor(kiln.pad(kiln.tensor([1, 2]), [[1, 1]]), { values: [0, 1, 2, 0], ...EXACT }, 'default value 0');
    const v = randND([3, 4], 150);
    await expectTensor(kiln.pad(T(v).transpose(), [[1, 0], [0, 1]], 2), { values: ref.pad(ref.transpose(v), [[1, 0], [0, 1]], 2), ...EXACT }, 'transposed');
    await expectTensor(kiln.pad(kiln.tensor(Int32Array.from([1, 2])), [[1, 0]], 5), { dtype: 'int32', values: [5, 1, 2], ...EXACT }, 'int32');
  });

  // ---- every op on views -------------------------------------------------------------------

  it('ops applied to transposed, sliced and expanded views equal the same ops on contiguous copies', async () => {
    const x = randND([4, 6], 160, 0.1, 2);
    const X = T(x);
    const views: Array<[string, Tensor]> = [
      ['transposed', X.transpose()],
      ['sliced', X.slice([1, 1], [3, 4])],
      ['expanded', X.slice([2, 0], [1, 6]).expand([3, 6])],
      ['sliced+transposed', X.slice([0, 2], [4, 3]).transpose()],
      ['permuted 3-D', T(randND([2, 3, 4], 161)).permute([2, 0, 1]).reshape([4, 6]).slice([0, 1], [4, 3])],
    ];
    const idx = kiln.tensor(Int32Array.from([1, 0, 1]));
    const ops: Array<[string, (t: Tensor) => Tensor | Tensor[]]> = [
      ['exp', (t) => t.exp()],
      ['add self^T', (t) => t.add(t.transpose().transpose())],
      ['mul row', (t) => t.mul(t.slice([0, 0], [1, t.shape[1]]))],
      ['sum(1)', (t) => t.sum(1)],
      ['max(0)', (t) => t.max(0)],
      ['argmax(1)', (t) => t.argmax(1)],
      ['softmax(0)', (t) => t.softmax(0)],
      ['matmul t^T', (t) => t.matmul(t, false, true)],
      ['reshape', (t) => t.reshape([-1])],
      ['gather', (t) => t.gather(idx, 0)],
      ['concat', (t) => kiln.concat([t, t], 1)],
      ['stack', (t) => kiln.stack([t, t], 2)],
      ['split', (t) => t.split([1, t.shape[0] - 1], 0)],
      ['cast', (t) => t.cast('int32')],
      ['pad', (t) => t.pad([[1, 0], [0, 1]], -1)],
      ['where', (t) => kiln.where(t.greater(1), t, 0)],
      ['scatterAdd', (t) => kiln.scatterAdd(t, idx, kiln.ones([3, t.shape[1]]))],
      ['oneHot', (t) => t.cast('int32').oneHot(3)],
      ['squeeze/unsqueeze', (t) => t.unsqueeze(1).squeeze(1)],
      ['permute', (t) => t.permute([1, 0]).contiguous()],
    ];
    for (const [vname, v] of views) {
      const c = v.contiguous();
      await expectTensor(c, { values: await toND(v), ...EXACT }, `${vname}: contiguous`);
      for (const [oname, op] of ops) {
        const a = [op(v)].flat();
        const b = [op(c)].flat();
        expect(a.length).toBe(b.length);
        for (let i = 0; i < a.length; i++) {
          expect([...a[i].shape], `${oname} on ${vname}: shape`).toEqual([...b[i].shape]);
          expect(a[i].dtype).toBe(b[i].dtype);
          assertClose(await read(a[i]), await read(b[i]), { atol: 1e-6, rtol: 1e-6, roundExpected: false }, `${oname} on ${vname}`);
        }
      }
    }
  });

  it('large copies (multi-threaded path): contiguous, concat, pad, cast, gather', async () => {
    const x = randND([300, 211], 180);
    const X = T(x);
    await expectTensor(X.transpose().contiguous(), { shape: [211, 300], values: ref.transpose(x), ...EXACT }, 'transpose copy');
    await expectTensor(X.slice([1, 3], [290, 200]).contiguous(), { values: ref.slice(x, [1, 3], [290, 200]), ...EXACT }, 'slice copy');
    const y = randND([300, 150], 181);
    await expectTensor(kiln.concat([X, T(y)], 1), { shape: [300, 361], values: ref.concat([x, y], 1), ...EXACT }, 'concat axis 1');
    await expectTensor(kiln.concat([X.transpose(), T(ref.transpose(y))], 0), { values: ref.concat([ref.transpose(x), ref.transpose(y)], 0), ...EXACT }, 'concat of transposed');
    await expectTensor(kiln.pad(X, [[2, 1], [0, 3]], -1), { values: ref.pad(x, [[2, 1], [0, 3]], -1), ...EXACT }, 'pad');
    await expectTensor(X.transpose().cast('int32'), { values: ref.transpose(x).data.map(Math.trunc), ...EXACT }, 'cast of transposed');
    const idx = randIntND([500], 182, 0, 300);
    await expectTensor(kiln.gather(X, Ti(idx), 0), { values: ref.gather(x, idx, 0), ...EXACT }, 'gather rows');
    await expectTensor(X.slice([0, 0], [1, 211]).expand([400, 211]).contiguous(), { values: ref.broadcastTo(ref.slice(x, [0, 0], [1, 211]), [400, 211]), ...EXACT }, 'expand copy');
  });

  it('clone has the same shape, dtype and values and is independently disposable', async () => {
    const x = T(randND([2, 3], 170));
    const c = x.clone();
    await expectTensor(c, { shape: [2, 3], dtype: 'float32', values: await read(x), ...EXACT });
    c.dispose();
    await expectTensor(x, { shape: [2, 3], values: await read(x.contiguous()), ...EXACT }, 'original survives');
    const tc = x.transpose().clone();
    await expectTensor(tc, { shape: [3, 2], values: await read(x.transpose().contiguous()), ...EXACT }, 'clone of view');
    const i = kiln.tensor(Int32Array.from([1, 2])).clone();
    expect(i.dtype).toBe('int32');
  });
});
