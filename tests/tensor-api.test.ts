/**
 * The Tensor object: metadata, reading data back (sync and async), printing, cloning, disposal,
 * and every method mirroring its function.
 */
import { expect, it } from 'vitest';
import * as kiln from '../ts/index.js';
import { Tensor } from '../ts/index.js';
import { BACKENDS, forEachBackend } from './backends.js';
import { T, assertClose, expectThrows, randND, read } from './helpers.js';

/**
 * False for the GPU backend in a page: WebGPU cannot be waited for there, so dataSync/arraySync of
 * a GPU tensor throw, naming `await t.data()` (docs/browser.md), and toString says how to read.
 */
const syncReads = (name: string) => name !== 'gpu' || kiln.gpuInfo().backend !== 'BrowserWebGpu';

forEachBackend((name) => {
  it('shape, dtype, rank and size', () => {
    const cases: Array<[Tensor, number[], kiln.DType]> = [
      [kiln.scalar(1), [], 'float32'],
      [kiln.zeros([0]), [0], 'float32'],
      [kiln.zeros([2, 3, 4]), [2, 3, 4], 'float32'],
      [kiln.zeros([5, 0, 2], 'int32'), [5, 0, 2], 'int32'],
      [kiln.tensor([true, false]), [2], 'bool'],
      [kiln.zeros([2, 3, 4]).transpose(), [4, 3, 2], 'float32'],
    ];
    for (const [t, shape, dtype] of cases) {
      expect([...t.shape]).toEqual(shape);
      expect(t.dtype).toBe(dtype);
      expect(t.rank).toBe(shape.length);
      expect(t.size).toBe(shape.reduce((a, b) => a * b, 1));
    }
  });

  it('data() (async) and dataSync() return typed arrays of the dtype', async () => {
    const f = kiln.tensor([[1, 2], [3, 4]]);
    const i = kiln.tensor(new Int32Array([5, -6]));
    const b = kiln.tensor([true, false, true]);
    const df = f.data();
    expect(df).toBeInstanceOf(Promise);
    expect(await df).toBeInstanceOf(Float32Array);
    expect(Array.from(await df)).toEqual([1, 2, 3, 4]);
    expect(await i.data()).toBeInstanceOf(Int32Array);
    expect(Array.from(await i.data())).toEqual([5, -6]);
    expect(await b.data()).toBeInstanceOf(Uint8Array);
    expect(Array.from(await b.data())).toEqual([1, 0, 1]);
    // views read back in their own (logical) order
    expect(Array.from(await f.transpose().data())).toEqual([1, 3, 2, 4]);
    if (!syncReads(name)) {
      expectThrows(() => f.dataSync(), 'synchronous GPU read is not possible', 'await t.data()');
      return;
    }
    expect(Array.from(f.dataSync())).toEqual([1, 2, 3, 4]);
    expect(f.dataSync()).toBeInstanceOf(Float32Array);
    expect(Array.from(f.transpose().dataSync())).toEqual([1, 3, 2, 4]);
  });

  it('array() and arraySync() nest by shape; scalars give a number', async () => {
    const t = kiln.tensor([[1, 2, 3], [4, 5, 6]]);
    expect(await t.array()).toEqual([[1, 2, 3], [4, 5, 6]]);
    if (syncReads(name)) expect(t.arraySync()).toEqual([[1, 2, 3], [4, 5, 6]]);
    else expectThrows(() => t.arraySync(), 'synchronous GPU read is not possible', 'await t.data()');
    expect(await t.transpose().array()).toEqual([[1, 4], [2, 5], [3, 6]]);
    expect(await kiln.scalar(7).array()).toBe(7);
    if (syncReads(name)) expect(kiln.scalar(7).arraySync()).toBe(7);
    expect(await kiln.zeros([2, 0]).array()).toEqual([[], []]);
    expect(await kiln.zeros([0, 2]).array()).toEqual([]);
    expect(await kiln.tensor([[[1], [2]]]).array()).toEqual([[[1], [2]]]);
    expect(await kiln.tensor(new Int32Array([1, 2, 3, 4]), [2, 2]).array()).toEqual([[1, 2], [3, 4]]);
  });

  it('toString names dtype, shape and values (in a page on WebGPU: how to read them); a disposed tensor says so', () => {
    const t = kiln.tensor([[1, 2], [3, 4]]);
    const s = t.toString();
    expect(s).toContain('float32');
    expect(s).toContain('2, 2');
    expect(kiln.tensor(new Int32Array([9])).toString()).toContain('int32');
    if (syncReads(name)) {
      expect(s).toContain('3');
      expect(s).toContain('4');
      expect(String(kiln.scalar(5))).toContain('5');
    } else {
      expect(s).toBe('Tensor(float32 [2, 2]) on gpu: read its values with `await t.array()`');
    }
    t.dispose();
    expect(t.toString()).toContain('disposed');
  });

  it('clone is equal, separate, and keeps the dtype', async () => {
    const x = kiln.tensor([[1, 2], [3, 4]]);
    const c = x.clone();
    expect(c).not.toBe(x);
    expect(await c.array()).toEqual(await x.array());
    x.dispose();
    expect(await c.array()).toEqual([[1, 2], [3, 4]]);
    expect(kiln.tensor([true]).clone().dtype).toBe('bool');
  });

  it('dispose is idempotent; a disposed tensor refuses to be used', () => {
    const t = kiln.ones([3]);
    expect(t.isDisposed).toBe(false);
    t.dispose();
    expect(t.isDisposed).toBe(true);
    expect(() => t.dispose()).not.toThrow();
    expect(() => kiln.dispose(t)).not.toThrow();
    expectThrows(() => t.dataSync(), 'disposed');
    expectThrows(() => t.add(1), 'disposed');
    expectThrows(() => kiln.exp(t), 'disposed');
  });

  it('kiln.dispose frees tensors in arrays and objects', () => {
    const a = kiln.ones([2]);
    const b = kiln.ones([2]);
    const c = kiln.ones([2]);
    kiln.dispose([a, { inner: b, list: [c] }]);
    expect([a.isDisposed, b.isDisposed, c.isDisposed]).toEqual([true, true, true]);
  });

  it('every method mirrors its function', async () => {
    const x = T(randND([3, 4], 1, 0.1, 2));
    const y = T(randND([3, 4], 2, 0.1, 2));
    const idx = kiln.tensor(new Int32Array([2, 0]));
    const mask = x.greater(1);
    const calls: Array<[string, (t: Tensor) => Tensor | Tensor[], (t: Tensor) => Tensor | Tensor[]]> = [
      ...(['neg', 'abs', 'exp', 'log', 'sqrt', 'rsqrt', 'square', 'sin', 'cos', 'tanh', 'sigmoid', 'relu', 'gelu', 'softplus', 'softsign', 'mish'] as const).map(
        (m) => [m, (t: Tensor) => t[m](), (t: Tensor) => kiln[m](t)] as [string, (t: Tensor) => Tensor, (t: Tensor) => Tensor],
      ),
      ['leakyRelu', (t) => t.leakyRelu(0.3), (t) => kiln.leakyRelu(t, 0.3)],
      ['elu', (t) => t.elu(0.7), (t) => kiln.elu(t, 0.7)],
      ...(['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'equal', 'notEqual', 'less', 'lessEqual', 'greater', 'greaterEqual'] as const).map(
        (m) => [m, (t: Tensor) => t[m](y), (t: Tensor) => kiln[m](t, y)] as [string, (t: Tensor) => Tensor, (t: Tensor) => Tensor],
      ),
      ['where', () => mask.where(x, y), () => kiln.where(mask, x, y)],
      ...(['sum', 'mean', 'max', 'min', 'logSumExp'] as const).map(
        (m) => [m, (t: Tensor) => t[m](1, true), (t: Tensor) => kiln[m](t, 1, true)] as [string, (t: Tensor) => Tensor, (t: Tensor) => Tensor],
      ),
      ['argmax', (t) => t.argmax(1), (t) => kiln.argmax(t, 1)],
      ['argmin', (t) => t.argmin(0), (t) => kiln.argmin(t, 0)],
      ['variance', (t) => t.variance(0, false, 1), (t) => kiln.variance(t, 0, false, 1)],
      ['softmax', (t) => t.softmax(0), (t) => kiln.softmax(t, 0)],
      ['logSoftmax', (t) => t.logSoftmax(), (t) => kiln.logSoftmax(t)],
      ['matmul', (t) => t.matmul(y, false, true), (t) => kiln.matmul(t, y, false, true)],
      ['reshape', (t) => t.reshape([2, -1]), (t) => kiln.reshape(t, [2, -1])],
      ['flatten', (t) => t.flatten(), (t) => kiln.reshape(t, [-1])],
      ['transpose', (t) => t.transpose(), (t) => kiln.transpose(t)],
      ['permute', (t) => t.permute([1, 0]), (t) => kiln.permute(t, [1, 0])],
      ['slice', (t) => t.slice([1, 1], [2, -1]), (t) => kiln.slice(t, [1, 1], [2, -1])],
      ['expand', (t) => t.slice([0, 0], [1, 4]).expand([2, 4]), (t) => kiln.expand(kiln.slice(t, [0, 0], [1, 4]), [2, 4])],
      ['broadcastTo', (t) => t.broadcastTo([2, 3, 4]), (t) => kiln.expand(t, [2, 3, 4])],
      ['contiguous', (t) => t.transpose().contiguous(), (t) => kiln.contiguous(kiln.transpose(t))],
      ['squeeze', (t) => t.reshape([1, 12, 1]).squeeze(), (t) => kiln.squeeze(kiln.reshape(t, [1, 12, 1]))],
      ['unsqueeze', (t) => t.unsqueeze(1), (t) => kiln.unsqueeze(t, 1)],
      ['expandDims', (t) => t.expandDims(2), (t) => kiln.unsqueeze(t, 2)],
      ['cast', (t) => t.cast('int32'), (t) => kiln.cast(t, 'int32')],
      ['split', (t) => t.split([1, 3], 1), (t) => kiln.split(t, [1, 3], 1)],
      ['gather', (t) => t.gather(idx, 1), (t) => kiln.gather(t, idx, 1)],
      ['indexSelect', (t) => t.indexSelect(0, idx), (t) => kiln.gather(t, idx, 0)],
      ['scatterAdd', (t) => t.scatterAdd(idx, kiln.ones([2, 4])), (t) => kiln.scatterAdd(t, idx, kiln.ones([2, 4]))],
      ['oneHot', () => idx.oneHot(3, 2, 1), () => kiln.oneHot(idx, 3, 2, 1)],
      ['pad', (t) => t.pad([[1, 1], [0, 2]], 5), (t) => kiln.pad(t, [[1, 1], [0, 2]], 5)],
    ];
    // every public op method of Tensor is covered above (data access and autograd are tested elsewhere)
    const notOps = ['constructor', 'dispose', 'dataSync', 'data', 'arraySync', 'array', 'toString', 'clone', 'to', 'moveTo']; // to/moveTo: tests/gpu/device.test.ts
    const autograd = ['setRequiresGrad', 'backward', 'zeroGrad', 'detach'];
    const methods = Object.getOwnPropertyNames(Tensor.prototype).filter(
      (m) => !notOps.includes(m) && !autograd.includes(m) &&
        typeof Object.getOwnPropertyDescriptor(Tensor.prototype, m)?.value === 'function',
    );
    expect(methods.filter((m) => !calls.some((c) => c[0] === m))).toEqual([]);
    for (const [m, viaMethod, viaFn] of calls) {
      const a = [viaMethod(x)].flat();
      const b = [viaFn(x)].flat();
      expect(a.length, m).toBe(b.length);
      for (let i = 0; i < a.length; i++) {
        expect([...a[i].shape], `${m} shape`).toEqual([...b[i].shape]);
        expect(a[i].dtype, `${m} dtype`).toBe(b[i].dtype);
        assertClose(await read(a[i]), await read(b[i]), { atol: 0, rtol: 0 }, m);
      }
    }
  });

  it('ops never modify their inputs', async () => {
    const x = T(randND([3, 4], 3));
    const before = await read(x);
    x.add(1);
    x.exp();
    x.transpose().contiguous();
    kiln.scatterAdd(x, kiln.tensor(new Int32Array([0])), kiln.ones([1, 4]));
    x.slice([0, 0], [1, 4]).reshape([4]);
    kiln.concat([x, x]);
    kiln.pad(x, [[1, 1], [1, 1]]);
    x.softmax();
    expect(await read(x)).toEqual(before);
  });

  it('backend introspection', () => {
    expect(kiln.getBackend()).toBe(name);
    expect(BACKENDS).toContain(kiln.getBackend());
    expect(typeof kiln.simdLevel()).toBe('string');
    expect(kiln.numThreads()).toBeGreaterThanOrEqual(1);
    const m = kiln.memory();
    expect(m.numTensors).toBeGreaterThanOrEqual(0);
    expect(m.numBytes).toBeGreaterThanOrEqual(0);
    expect(m.numBuffers).toBeGreaterThanOrEqual(0);
  });
});
