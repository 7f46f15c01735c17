/**
 * fit's forms beyond loss(model(x), y) over a DataLoader: arrays of batches reused across epochs,
 * in-memory { x, y } with batchSize/validationSplit/shuffle, models with several inputs, custom
 * steps (automatic and manual optimization, several optimizers, logged scalars), gradient
 * accumulation (equal to one update on the union of the batches), and the non-finite gradient
 * guard (issue 13, class 6).
 */
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import * as kiln from '../../ts/index.js';
import type { Tensor } from '../../ts/index.js';
import { optim } from '../../ts/index.js';
import type { Batch, TrainableModel } from '../../ts/train/index.js';
import { forEachBackend } from '../backends.js';
import { assertClose, read } from '../helpers.js';
import { TinyMlp, accuracyOf, batches, xorData } from './fixtures.js';

const trainSet = xorData(256, 1);
const valSet = xorData(200, 2);
const loss = (out: Tensor, y: Tensor) => kiln.crossEntropy(out, y);

/** The same batches as `batches(d, size)`, made once into an array. */
function batchArray(d: ReturnType<typeof xorData>, size: number): Batch[] {
  return [...(batches(d, size) as Iterable<Batch>)];
}

/** A model with two inputs, forward(a, b): the XOR MLP applied to the columns given separately. */
class TwoInputMlp extends TinyMlp {
  override forward(a: Tensor, b?: Tensor): Tensor {
    return kiln.tidy(() => super.forward(kiln.concat([a, b!], 1)));
  }
}

/** The same with named inputs, forward({ a, b }). */
class NamedInputMlp extends TinyMlp {
  override forward(x: Tensor | { a: Tensor; b: Tensor }): Tensor {
    const { a, b } = x as { a: Tensor; b: Tensor };
    return kiln.tidy(() => super.forward(kiln.concat([a, b], 1)));
  }
}

/** One weight w [1], output x·w: at w = 0 and y = 0 the fit is exact, where sqrt(mse) has an infinite derivative. */
function exactFitModel(): TrainableModel & { w: Tensor } {
  const w = kiln.keep(kiln.zeros([1, 1]).setRequiresGrad());
  return {
    w,
    forward: (x: Tensor) => x.matmul(w),
    parameters: () => [w],
    train: () => {},
    eval: () => {},
    stateDict: () => ({ w }),
    loadStateDict: () => {},
  };
}
const sqrtMse = (p: Tensor, y: Tensor) => kiln.mse(p, y).sqrt();

forEachBackend(() => {
  beforeEach(() => {
    vi.spyOn(console, 'log').mockImplementation(() => {});
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('an array of batches is iterated for many epochs and stays the caller’s (used to fail at epoch 2: "Tensor is disposed")', async () => {
    const model = new TinyMlp(2, 16, 2, 3);
    const opt = new optim.Adam(model.parameters(), { lr: 0.03 });
    const data = batchArray(trainSet, 32);
    const history = await kiln.fit(model, data, { epochs: 20, loss, optimizer: opt, metrics: ['accuracy'], verbose: 0 });
    expect(history.epochs.length).toBe(20);
    expect(history.epochs[19].accuracy).toBeGreaterThan(0.9);
    // the caller's tensors are intact and still usable
    expect(data.every((b) => !(b.x as Tensor).isDisposed && !b.y!.isDisposed)).toBe(true);
    kiln.dispose(data.flatMap((b) => [b.x as Tensor, b.y!]));
    opt.dispose();
    model.dispose();
  });

  it('fit(model, { x, y }, { batchSize, validationSplit, shuffle }): learns, validates on the last rows, leaves the tensors to the caller', async () => {
    const model = new TinyMlp(2, 16, 2, 3);
    const opt = new optim.Adam(model.parameters(), { lr: 0.03 });
    const x = kiln.tensor(trainSet.x, [256, 2]);
    const y = kiln.tensor(trainSet.y, [256]);
    const start = kiln.memory();
    const history = await kiln.fit(model, { x, y }, { epochs: 25, loss, optimizer: opt, batchSize: 32, validationSplit: 0.25, shuffle: true, seed: 7, metrics: ['accuracy'], verbose: 0 });
    const last = history.epochs[24];
    expect(last.valAccuracy).toBeGreaterThan(0.9);
    // validation is the last 64 rows (as Keras): the logged value is the accuracy on exactly those rows
    const held = kiln.tensor(trainSet.x.slice(192 * 2), [64, 2]);
    const logits = await kiln.predict(model, held);
    expect(await accuracyOf(logits, trainSet.y.slice(192))).toBeCloseTo(last.valAccuracy, 6);
    kiln.dispose([held, logits]);
    expect(x.isDisposed || y.isDisposed).toBe(false);
    opt.zeroGrad();
    opt.dispose();
    expect(kiln.memory().numTensors, 'only the optimizer state came and went').toBe(start.numTensors);
    // rows that disagree, and options that make no sense, are named
    await expect(kiln.fit(model, { x, y: kiln.zeros([10], 'int32') }, { epochs: 1, loss, optimizer: opt, verbose: 0 })).rejects.toThrow(/same number of rows.*\[256, 2\].*\[10\]/);
    await expect(kiln.fit(model, { x, y }, { epochs: 1, loss, optimizer: opt, validationSplit: 1.5, verbose: 0 })).rejects.toThrow(/validationSplit must be in \(0, 1\)/);
    await expect(kiln.fit(model, batchArray(trainSet, 32), { epochs: 1, loss, optimizer: opt, batchSize: 8, verbose: 0 })).rejects.toThrow(/batchSize applies to in-memory tensors/);
    kiln.dispose([x, y]);
    model.dispose();
  });

  it('a model with several inputs: x as an array is passed as forward(...x); training matches the one-input model exactly', async () => {
    const one = new TinyMlp(2, 8, 2, 4);
    const two = new TwoInputMlp(2, 8, 2, 4);
    const optOne = new optim.SGD(one.parameters(), { lr: 0.1 });
    const optTwo = new optim.SGD(two.parameters(), { lr: 0.1 });
    const split = batchArray(trainSet, 64).map(({ x, y }) => ({ x: [kiln.slice(x as Tensor, [0, 0], [-1, 1]), kiln.slice(x as Tensor, [0, 1], [-1, 1])], y }));
    await kiln.fit(one, batches(trainSet, 64), { epochs: 3, loss, optimizer: optOne, verbose: 0 });
    await kiln.fit(two, split, { epochs: 3, loss, optimizer: optTwo, verbose: 0 });
    expect(await two.weights()).toEqual(await one.weights());
    // tuples [x, y], and named inputs { a, b } passed as one object; in-memory validation data
    const named = new NamedInputMlp(2, 8, 2, 4);
    const optNamed = new optim.SGD(named.parameters(), { lr: 0.1 });
    const tuples = split.map(({ x, y }) => [{ a: x[0], b: x[1] }, y!] as [Record<string, Tensor>, Tensor]);
    const valX = kiln.tensor(valSet.x, [valSet.n, 2]);
    const valInputs = { a: kiln.slice(valX, [0, 0], [-1, 1]), b: kiln.slice(valX, [0, 1], [-1, 1]) };
    const valY = kiln.tensor(valSet.y, [valSet.n]);
    const history = await kiln.fit(named, tuples, { epochs: 3, loss, optimizer: optNamed, validationData: { x: valInputs, y: valY }, metrics: ['accuracy'], verbose: 0 });
    expect(await named.weights()).toEqual(await one.weights());
    const logits = await kiln.predict(one, valX);
    expect(history.epochs[2].valAccuracy).toBeCloseTo(await accuracyOf(logits, valSet.y), 6);
    kiln.dispose([logits, valX, valInputs.a, valInputs.b, valY]);
    kiln.dispose(split.flatMap((b) => [...b.x, b.y!]));
    [optOne, optTwo, optNamed, one, two, named].forEach((o) => o.dispose());
  });

  it('trainStep returning the loss trains exactly as the default step; ctx.log scalars reach batch and epoch logs; validation runs the step without gradients', async () => {
    const a = new TinyMlp(2, 8, 2, 6);
    const b = new TinyMlp(2, 8, 2, 6);
    const optA = new optim.Adam(a.parameters(), { lr: 0.01 });
    const optB = new optim.Adam(b.parameters(), { lr: 0.01 });
    const plain = await kiln.fit(a, batches(trainSet, 32), { epochs: 2, loss, optimizer: optA, validationData: batches(valSet, 50), metrics: ['accuracy'], verbose: 0 });
    const seen: number[] = [];
    const custom = await kiln.fit(b, batches(trainSet, 32), {
      epochs: 2,
      optimizer: optB,
      validationData: batches(valSet, 50),
      metrics: ['accuracy'],
      verbose: 0,
      trainStep: ({ x, y }: Batch, ctx) => {
        expect(ctx.model).toBe(b);
        const outputs = ctx.model.forward(x);
        const l = kiln.crossEntropy(outputs, y!);
        ctx.log('double', l.mul(2));
        ctx.log('constant', 3);
        return { loss: l, outputs, targets: y };
      },
      callbacks: [{ onBatchEnd: (_batch, logs) => void seen.push(logs.double! / logs.loss!, logs.constant!) }],
    });
    expect(await b.weights()).toEqual(await a.weights());
    for (const key of ['loss', 'accuracy', 'valLoss', 'valAccuracy']) expect(custom.epochs[1][key], key).toBeCloseTo(plain.epochs[1][key], 6);
    expect(custom.epochs[1].double).toBeCloseTo(2 * custom.epochs[1].loss, 5);
    expect(custom.epochs[1].valDouble).toBeCloseTo(2 * custom.epochs[1].valLoss, 5);
    expect(custom.epochs[1].constant).toBe(3);
    seen.forEach((v, i) => expect(v).toBeCloseTo(i % 2 === 0 ? 2 : 3, 5));
    [optA, optB, a, b].forEach((o) => o.dispose());
  });

  it('manualOptimization with two optimizers: the step decides which updates; ctx.optimizerStep checks the gradients first', async () => {
    const model = new TinyMlp(2, 8, 2, 7);
    const first = new optim.SGD([model.params.w1, model.params.b1], { lr: 0.1 });
    const second = new optim.SGD([model.params.w2, model.params.b2], { lr: 0.1 });
    const w2Before = await read(model.params.w2);
    const w1Before = await read(model.params.w1);
    const history = await kiln.fit(model, batches(trainSet, 64), {
      epochs: 2,
      optimizer: [first, second],
      manualOptimization: true,
      loss,
      validationData: batches(valSet, 100),
      verbose: 0,
      trainStep: ({ x, y }: Batch, ctx) => {
        expect(ctx.optimizers).toEqual([first, second]);
        const l = kiln.crossEntropy(ctx.model.forward(x), y!);
        l.backward();
        ctx.optimizerStep(first);
        return l;
      },
    });
    expect(first.stepCount).toBe(8);
    expect(second.stepCount).toBe(0);
    expect(await read(model.params.w2)).toEqual(w2Before);
    expect(await read(model.params.w1)).not.toEqual(w1Before);
    expect(Number.isFinite(history.epochs[1].valLoss)).toBe(true);
    [first, second, model].forEach((o) => o.dispose());
  });

  it('accumulateSteps: k batches of n make the same updates as batches of k·n (a shorter last window averages over itself)', async () => {
    const data = xorData(80, 3);
    const big = new TinyMlp(2, 8, 2, 8);
    const small = new TinyMlp(2, 8, 2, 8);
    const optBig = new optim.SGD(big.parameters(), { lr: 0.2, momentum: 0.9 });
    const optSmall = new optim.SGD(small.parameters(), { lr: 0.2, momentum: 0.9 });
    // 80 rows: batches of 32, 32, 16 against 5 batches of 16 in windows of 2, 2, 1
    await kiln.fit(big, batches(data, 32), { epochs: 3, loss, optimizer: optBig, verbose: 0 });
    await kiln.fit(small, batches(data, 16), { epochs: 3, loss, optimizer: optSmall, accumulateSteps: 2, verbose: 0 });
    expect(optSmall.stepCount).toBe(optBig.stepCount);
    const [want, got] = [await big.weights(), await small.weights()];
    for (const k of Object.keys(want)) assertClose(got[k], want[k], { atol: 1e-5, rtol: 1e-4 });
    // and it is not the same as no accumulation
    const plain = new TinyMlp(2, 8, 2, 8);
    const optPlain = new optim.SGD(plain.parameters(), { lr: 0.2, momentum: 0.9 });
    await kiln.fit(plain, batches(data, 16), { epochs: 3, loss, optimizer: optPlain, verbose: 0 });
    expect(optPlain.stepCount).toBe(15);
    // without a known length, the last window of each epoch (batch 5) still makes its update
    const unsized = { *[Symbol.iterator]() { yield* batches(data, 16) as Iterable<Batch>; } };
    const optUnsized = new optim.SGD(plain.parameters(), { lr: 0.2 });
    await kiln.fit(plain, unsized, { epochs: 2, loss, optimizer: optUnsized, accumulateSteps: 2, verbose: 0 });
    expect(optUnsized.stepCount).toBe(6);
    optUnsized.dispose();
    [optBig, optSmall, optPlain, big, small, plain].forEach((o) => o.dispose());
  });

  it('a finite loss with a NaN gradient (sqrt(mse) at an exact fit) stops before the update, naming the parameter; the weights are untouched', async () => {
    const model = exactFitModel();
    const opt = new optim.SGD(model.parameters(), { lr: 0.1 });
    const data = [{ x: kiln.ones([4, 1]), y: kiln.zeros([4, 1]) }];
    let message = '';
    await kiln.fit(model, data, { epochs: 1, loss: sqrtMse, optimizer: opt, verbose: 0 }).catch((e: Error) => (message = e.message));
    expect(message).toMatch(/the loss is finite \(0\) but the gradients of w \[1, 1\] hold NaN or ±Infinity/);
    expect(message).toMatch(/epoch 1, step 1/);
    expect(message).toMatch(/before this step updated the weights/);
    expect(await read(model.w)).toEqual([0]);
    expect(opt.stepCount).toBe(0);
    // the same through accumulation and through a custom step
    await expect(kiln.fit(model, [...data, ...data], { epochs: 1, loss: sqrtMse, optimizer: opt, accumulateSteps: 2, verbose: 0 })).rejects.toThrow(/gradients of w \[1, 1\]/);
    await expect(
      kiln.fit(model, data, { epochs: 1, optimizer: opt, verbose: 0, trainStep: ({ x, y }: Batch, ctx) => sqrtMse(ctx.model.forward(x), y!) }),
    ).rejects.toThrow(/gradients of w \[1, 1\]/);
    await expect(
      kiln.fit(model, data, {
        epochs: 1, optimizer: opt, verbose: 0, manualOptimization: true,
        trainStep: ({ x, y }: Batch, ctx) => {
          const l = sqrtMse(ctx.model.forward(x), y!);
          l.backward();
          ctx.optimizerStep();
          return l;
        },
      }),
    ).rejects.toThrow(/the gradients of w \[1, 1\] hold NaN/);
    expect(await read(model.w)).toEqual([0]);
    expect(opt.stepCount).toBe(0);
    kiln.dispose([data[0].x, data[0].y]);
    opt.dispose();
    model.w.dispose();
  });

  it("onNonFiniteGradients: 'skip' drops the poisoned updates, counts them, and the good ones still train", async () => {
    const model = exactFitModel();
    const opt = new optim.SGD(model.parameters(), { lr: 0.1 });
    // batch 1 is an exact fit (NaN gradient); batch 2 has y = 1, a finite gradient that moves w
    const data = [
      { x: kiln.ones([4, 1]), y: kiln.zeros([4, 1]) },
      { x: kiln.ones([4, 1]), y: kiln.ones([4, 1]) },
    ];
    const history = await kiln.fit(model, data, { epochs: 1, loss: sqrtMse, optimizer: opt, onNonFiniteGradients: 'skip', verbose: 0 });
    expect(history.epochs[0].skippedSteps).toBe(1);
    expect(opt.stepCount).toBe(1);
    // d sqrt(mean((w - 1)^2)) / dw at w = 0 is -1: one SGD step of lr 0.1 gives w = 0.1
    assertClose(await read(model.w), [0.1], { atol: 1e-6 });
    kiln.dispose(data.flatMap((b) => [b.x, b.y]));
    opt.dispose();
    model.w.dispose();
  });

  it('errors name what is wrong: an unknown metric lists the known ones; a batch of another form asks for a trainStep; a non-scalar loss', async () => {
    const model = new TinyMlp(2, 4, 2);
    const opt = new optim.SGD(model.parameters(), { lr: 0.1 });
    await expect(kiln.fit(model, batches(trainSet, 128), { epochs: 1, loss, optimizer: opt, metrics: ['acc'], verbose: 0 })).rejects.toThrow(
      /unknown metric 'acc'; known metrics: accuracy, top<k>Accuracy, precision, recall, f1.*auroc, mae, mse, rmse, r2, perplexity, bitsPerChar/,
    );
    const odd = [{ features: kiln.zeros([2, 2]) }];
    await expect(kiln.fit(model, odd, { epochs: 1, loss, optimizer: opt, verbose: 0 })).rejects.toThrow(/a batch must be \{ x, y \} or \[x, y\], got an object with keys features.*trainStep/);
    await expect(kiln.fit(model, batches(trainSet, 128), { epochs: 1, optimizer: opt, verbose: 0, trainStep: ({ x }: Batch, ctx) => ctx.model.forward(x) })).rejects.toThrow(
      /the loss must be a float32 scalar \[\].*float32 tensor \[128, 2\]/,
    );
    await expect(kiln.fit(model, batches(trainSet, 128), { epochs: 1, optimizer: opt, verbose: 0 } as never)).rejects.toThrow(/pass loss .* or trainStep/);
    kiln.dispose(odd[0].features);
    opt.dispose();
    model.dispose();
  });
});
