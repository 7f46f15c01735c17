/**
 * TensorDataset and DataLoader: batch shapes and dtypes, epoch orders, prefetching, and that the
 * loader leaves nothing allocated once the consumer disposes what it was given.
 */
import { expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { DataLoader, randomFlipHorizontal, TensorDataset, type Dataset, type HostBatch } from '../../ts/data/index.js';
import { forEachBackend } from '../backends.js';
import { expectThrows, read } from '../helpers.js';

/** n samples of shape [2, 3]; every value of sample i is i, its label is i % 10. */
function numbered(n: number): TensorDataset {
  const x = new Float32Array(n * 6);
  for (let i = 0; i < n; i++) x.fill(i, i * 6, (i + 1) * 6);
  return new TensorDataset(x, [2, 3], Int32Array.from({ length: n }, (_, i) => i % 10));
}

/** One epoch: the sample ids in visiting order (read from x), the batch sizes; disposes every batch. */
async function epoch(loader: DataLoader): Promise<{ order: number[]; sizes: number[] }> {
  const order: number[] = [];
  const sizes: number[] = [];
  for await (const { x, y } of loader) {
    const values = await read(x);
    const labels = await read(y);
    sizes.push(x.shape[0]);
    for (let r = 0; r < x.shape[0]; r++) {
      order.push(values[r * 6]);
      expect(labels[r]).toBe(values[r * 6] % 10);
    }
    kiln.dispose([x, y]);
  }
  return { order, sizes };
}

forEachBackend(() => {
  it('yields x [batch, ...rowShape] float32 and y [batch] int32; length counts the batches', async () => {
    const loader = new DataLoader(numbered(10), { batchSize: 4 });
    expect(loader.length).toBe(3);
    const batches = [];
    for await (const b of loader) batches.push(b);
    expect(batches.map((b) => b.x.shape)).toEqual([[4, 2, 3], [4, 2, 3], [2, 2, 3]]);
    expect(batches.map((b) => b.y.shape)).toEqual([[4], [4], [2]]);
    expect(batches[0].x.dtype).toBe('float32');
    expect(batches[0].y.dtype).toBe('int32');
    expect(await read(batches[2].y)).toEqual([8, 9]);
    kiln.dispose(batches.flatMap((b) => [b.x, b.y]));
  });

  it('without shuffle visits samples in order; dropLast drops the short batch', async () => {
    const plain = await epoch(new DataLoader(numbered(10), { batchSize: 3 }));
    expect(plain.order).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(plain.sizes).toEqual([3, 3, 3, 1]);
    const dropped = new DataLoader(numbered(10), { batchSize: 3, dropLast: true });
    expect(dropped.length).toBe(3);
    expect((await epoch(dropped)).order).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(new DataLoader(numbered(2), { batchSize: 3, dropLast: true }).length).toBe(0);
  });

  it('shuffles each epoch anew, reproducibly for a seed', async () => {
    const a = new DataLoader(numbered(50), { batchSize: 8, shuffle: true, seed: 42 });
    const b = new DataLoader(numbered(50), { batchSize: 8, shuffle: true, seed: 42 });
    const a0 = (await epoch(a)).order;
    const a1 = (await epoch(a)).order;
    expect([...a0].sort((p, q) => p - q)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect([...a1].sort((p, q) => p - q)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(a1, 'epoch 1 differs from epoch 0').not.toEqual(a0);
    expect(a0, 'not the identity').not.toEqual([...a0].sort((p, q) => p - q));
    expect((await epoch(b)).order, 'same seed, same epoch 0').toEqual(a0);
    expect((await epoch(b)).order, 'same seed, same epoch 1').toEqual(a1);
    expect(a.epoch).toBe(2);
    a.epoch = 1;
    expect((await epoch(a)).order, 'resuming at epoch 1').toEqual(a1);
    const c = new DataLoader(numbered(50), { batchSize: 8, shuffle: true, seed: 43 });
    expect((await epoch(c)).order).not.toEqual(a0);
  });

  it('leaves kiln.memory() flat over epochs, and after breaking out early', async () => {
    const loader = new DataLoader(numbered(100), { batchSize: 16, shuffle: true, seed: 1 });
    const before = kiln.memory();
    for (let e = 0; e < 3; e++) {
      let steps = 0;
      for await (const { x, y } of loader) {
        const loss = kiln.tidy(() => x.mul(2).sum().add(y.cast('float32').sum()));
        kiln.dispose([x, y, loss]);
        steps++;
      }
      expect(steps).toBe(loader.length);
      expect(kiln.memory(), `after epoch ${e}`).toEqual(before);
    }
    for await (const { x, y } of loader) {
      kiln.dispose([x, y]);
      break; // the prefetched next batch must not become a tensor
    }
    await new Promise((r) => setImmediate(r));
    expect(kiln.memory()).toEqual(before);
  });

  it('assembles batch i+1 while the consumer works on batch i', async () => {
    const calls: number[] = [];
    const inner = numbered(12);
    const spy: Dataset = {
      length: inner.length,
      rowShape: inner.rowShape,
      labelShape: inner.labelShape,
      gather(indices) {
        calls.push(indices[0]);
        return inner.gather(indices);
      },
    };
    const loader = new DataLoader(spy, { batchSize: 4 });
    const it = loader[Symbol.asyncIterator]();
    const first = await it.next();
    expect(calls).toEqual([0]);
    // the consumer awaits something (a GPU step, a readback): the next batch gets assembled meanwhile
    await new Promise((r) => setImmediate(r));
    expect(calls).toEqual([0, 4]);
    kiln.dispose(first.value);
    await it.return?.();
    expect(calls).toEqual([0, 4]);
  });

  it('float32 targets with a label shape, for regression', async () => {
    const ds = new TensorDataset(Float32Array.from([1, 2, 3, 4, 5, 6]), [2], Float32Array.from([0.5, 1, 1.5, 2, 2.5, 3]), [2]);
    expect(ds.length).toBe(3);
    const loader = new DataLoader(ds, { batchSize: 2 });
    const it = loader[Symbol.asyncIterator]();
    const { value } = await it.next();
    expect(value.y.dtype).toBe('float32');
    expect(value.y.shape).toEqual([2, 2]);
    expect(await read(value.y)).toEqual([0.5, 1, 1.5, 2]);
    kiln.dispose(value);
    await it.return?.();
  });

  it('applies a transform to each batch before it becomes a tensor', async () => {
    const x = Float32Array.from({ length: 2 * 4 }, (_, i) => i); // 2 images [1, 2, 2]
    const ds = new TensorDataset(x, [1, 2, 2], Int32Array.from([0, 1]));
    const loader = new DataLoader(ds, { batchSize: 2, transform: randomFlipHorizontal(1) });
    for await (const b of loader) {
      expect(await read(b.x)).toEqual([1, 0, 3, 2, 5, 4, 7, 6]);
      kiln.dispose(b);
    }
    expect(Array.from(x), 'the dataset itself is untouched').toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('reports a failing batch when it is reached, without unhandled rejections', async () => {
    const inner = numbered(8);
    const failing: Dataset = {
      length: inner.length,
      rowShape: inner.rowShape,
      labelShape: inner.labelShape,
      gather(indices): HostBatch {
        if (indices[0] === 4) throw new Error('disk gone');
        return inner.gather(indices);
      },
    };
    const loader = new DataLoader(failing, { batchSize: 4 });
    const before = kiln.memory();
    await expect(epoch(loader)).rejects.toThrow('disk gone');
    expect(kiln.memory()).toEqual(before);
  });

  it('explains bad datasets and options', () => {
    expectThrows(() => new TensorDataset(new Float32Array(5), [2], new Int32Array(2)), '5 feature values do not divide into rows of shape [2]');
    expectThrows(() => new TensorDataset(new Float32Array(4), [2], new Int32Array(3)), '2 rows of features but 3 label values');
    expectThrows(() => new TensorDataset(new Uint8Array(4) as unknown as Float32Array, [2], new Int32Array(2)), 'features must be a Float32Array, got Uint8Array', 'scale(images, 1 / 255)');
    expectThrows(() => new TensorDataset(new Float32Array(4), [0], new Int32Array(2)), 'rowShape must be an array of positive integers');
    expectThrows(() => new TensorDataset(new Float32Array(4), [2], [1, 2] as unknown as Int32Array), 'labels must be an Int32Array or Uint8Array');
    expectThrows(() => new DataLoader(numbered(4), { batchSize: 0 }), 'batchSize must be a positive integer');
    expectThrows(() => new DataLoader({} as Dataset), 'expected a Dataset');
  });

  it('Uint8Array labels (as loadMnist returns them) become int32', async () => {
    const ds = new TensorDataset(new Float32Array(6), [3], Uint8Array.from([7, 2]));
    for await (const b of new DataLoader(ds, { batchSize: 2 })) {
      expect(b.y.dtype).toBe('int32');
      expect(await read(b.y)).toEqual([7, 2]);
      kiln.dispose(b);
    }
  });
});
