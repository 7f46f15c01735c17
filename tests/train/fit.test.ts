/**
 * The training loop on a small synthetic problem with a hand-written model: it learns (an
 * accuracy no linear model and no broken optimizer reaches), logs validation metrics each epoch,
 * switches train/eval modes, frees what it makes, stops on a NaN loss naming epoch and step;
 * evaluate warns on a reused test set; predict concatenates batches.
 */
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import * as kiln from '../../ts/index.js';
import { optim, train } from '../../ts/index.js';
import { forEachBackend } from '../backends.js';
import { assertClose, read } from '../helpers.js';
import { TinyMlp, accuracyOf, batches, xorData } from './fixtures.js';

const trainSet = xorData(256, 1);
const valSet = xorData(200, 2);
const loss = (out: kiln.Tensor, y: kiln.Tensor) => kiln.crossEntropy(out, y);

forEachBackend(() => {
  beforeEach(() => {
    vi.spyOn(console, 'log').mockImplementation(() => {});
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('fit learns XOR (validation accuracy >= 0.93), logs every epoch, and leaks nothing', async () => {
    const model = new TinyMlp(2, 16, 2, 3);
    const opt = new optim.Adam(model.parameters(), { lr: 0.03 });
    const valX = kiln.tensor(valSet.x, [valSet.n, 2]);
    const initialLogits = kiln.noGrad(() => model.forward(valX));
    const before = await accuracyOf(initialLogits, valSet.y);
    kiln.dispose([valX, initialLogits]);
    const start = kiln.memory();
    const history = await kiln.fit(model, batches(trainSet, 32), {
      epochs: 30,
      loss,
      optimizer: opt,
      validationData: batches(valSet, 64),
      metrics: ['accuracy'],
      verbose: 0,
    });
    expect(history.epochs.length).toBe(30);
    expect(history.stoppedEarly).toBe(false);
    history.epochs.forEach((logs, i) => {
      expect(Object.keys(logs).sort(), `epoch ${i + 1} log keys`).toEqual(['accuracy', 'epoch', 'loss', 'lr', 'valAccuracy', 'valLoss']);
      expect(logs.epoch).toBe(i + 1);
      for (const [k, v] of Object.entries(logs)) expect(Number.isFinite(v), `epoch ${i + 1} ${k} = ${v}`).toBe(true);
      expect(logs.lr).toBe(0.03);
    });
    const first = history.epochs[0];
    const last = history.epochs[29];
    expect(last.valAccuracy, `validation accuracy (before training: ${before})`).toBeGreaterThanOrEqual(0.93);
    expect(last.accuracy).toBeGreaterThanOrEqual(0.93);
    expect(last.loss).toBeLessThan(first.loss * 0.5);
    // the logged valAccuracy is the accuracy of the final weights on the validation set
    const finalX = kiln.tensor(valSet.x, [valSet.n, 2]);
    const logits = await kiln.predict(model, finalX);
    expect(await accuracyOf(logits, valSet.y)).toBeCloseTo(last.valAccuracy, 6);
    kiln.dispose([finalX, logits]);
    // the last step's gradients stay in the parameters until zeroGrad
    opt.zeroGrad();
    opt.dispose();
    expect(kiln.memory(), 'after fit, zeroGrad and disposing the optimizer state, only the model remains').toEqual(start);
    model.dispose();
  });

  it('a broken optimizer (lr 1e-9) stays far below the threshold on the same problem', async () => {
    const model = new TinyMlp(2, 16, 2, 3);
    const opt = new optim.Adam(model.parameters(), { lr: 1e-9 });
    const history = await kiln.fit(model, batches(trainSet, 32), { epochs: 3, loss, optimizer: opt, validationData: batches(valSet, 64), metrics: ['accuracy'], verbose: 0 });
    expect(history.epochs[2].valAccuracy).toBeLessThan(0.8);
    opt.dispose();
    model.dispose();
  });

  it('fit puts the model in train mode for steps and eval mode for validation; lr is logged per epoch', async () => {
    const model = new TinyMlp(2, 4, 2);
    const modes: boolean[] = [];
    const forward = model.forward.bind(model);
    model.forward = (x) => {
      modes.push(model.training);
      return forward(x);
    };
    const opt = new optim.SGD(model.parameters(), { lr: 0.1 });
    const history = await kiln.fit(model, batches(trainSet, 128), {
      epochs: 2,
      loss,
      optimizer: opt,
      validationData: batches(valSet, 100),
      callbacks: [new train.LRScheduler(new optim.StepDecay(opt, 1, 0.5))],
      verbose: 0,
    });
    // per epoch: 2 training steps, then 2 validation batches
    expect(modes).toEqual([true, true, false, false, true, true, false, false]);
    expect(history.epochs.map((e) => e.lr)).toEqual([0.1, 0.05]);
    opt.dispose();
    model.dispose();
  });

  it('a NaN loss stops fit with an error naming the epoch and the step', async () => {
    const model = new TinyMlp(2, 8, 2);
    const opt = new optim.SGD(model.parameters(), { lr: 0.1 });
    const start = kiln.memory();
    const data = batches(trainSet, 32, (epoch, step) => epoch === 2 && step === 3);
    await expect(kiln.fit(model, data, { epochs: 3, loss, optimizer: opt, verbose: 0 })).rejects.toThrow(/NaN at epoch 2, step 3/);
    opt.zeroGrad();
    opt.dispose();
    expect(kiln.memory(), 'the aborted fit leaks nothing').toEqual(start);
    model.dispose();
  });

  it('the step with a NaN loss never reaches the weights', async () => {
    const model = new TinyMlp(2, 8, 2);
    const opt = new optim.SGD(model.parameters(), { lr: 0.1 });
    const data = batches(trainSet, 32, (epoch, step) => epoch === 1 && step === 1);
    const before = await Promise.all(model.parameters().map((p) => read(p)));
    await expect(kiln.fit(model, data, { epochs: 1, loss, optimizer: opt, verbose: 0 })).rejects.toThrow(/NaN at epoch 1, step 1.*before this step updated the weights/);
    const after = await Promise.all(model.parameters().map((p) => read(p)));
    expect(after).toEqual(before);
    opt.dispose();
    model.dispose();
  });

  it("onNonFiniteLoss: 'skip' drops poisoned batches, counts them, still learns, and leaks nothing", async () => {
    const model = new TinyMlp(2, 16, 2, 3);
    const opt = new optim.Adam(model.parameters(), { lr: 0.03 });
    const start = kiln.memory();
    const data = batches(trainSet, 32, (_epoch, step) => step % 4 === 0);
    const history = await kiln.fit(model, data, { epochs: 30, loss, optimizer: opt, verbose: 0, onNonFiniteLoss: 'skip', metrics: ['accuracy'] });
    expect(history.epochs.every((e) => e.skippedSteps === 2), 'steps 4 and 8 of each epoch are skipped').toBe(true);
    expect(history.epochs.at(-1)!.accuracy).toBeGreaterThan(0.9);
    expect(Number.isFinite(history.epochs.at(-1)!.loss)).toBe(true);
    // An epoch where every batch is poisoned stops with a message instead of spinning.
    const allBad = batches(trainSet, 32, () => true);
    await expect(kiln.fit(model, allBad, { epochs: 1, loss, optimizer: opt, verbose: 0, onNonFiniteLoss: 'skip' })).rejects.toThrow(/every one of the 8 steps of epoch 1/);
    opt.zeroGrad();
    opt.dispose();
    expect(kiln.memory().numTensors, 'only the optimizer state was added, and it is gone').toBe(start.numTensors);
    model.dispose();
  });

  it('fit rejects epochs < 1 and a source without batches', async () => {
    const model = new TinyMlp(2, 4, 2);
    const opt = new optim.SGD(model.parameters(), { lr: 0.1 });
    await expect(kiln.fit(model, batches(trainSet, 32), { epochs: 0, loss, optimizer: opt, verbose: 0 })).rejects.toThrow(/epochs must be >= 1/);
    await expect(kiln.fit(model, [], { epochs: 1, loss, optimizer: opt, verbose: 0 })).rejects.toThrow(/no batches/);
    opt.dispose();
    model.dispose();
  });

  it('evaluate: loss and metrics with a prefix; a test set evaluated twice prints the warning', async () => {
    const model = new TinyMlp(2, 8, 2);
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const plain = batches(valSet, 50);
    const a = await kiln.evaluate(model, plain, { loss, metrics: ['accuracy'] });
    await kiln.evaluate(model, plain, { loss });
    expect(warn, 'a set not marked as test set never warns').not.toHaveBeenCalled();
    expect(Object.keys(a).sort()).toEqual(['accuracy', 'loss']);
    // the mean loss over batches of different sizes is the mean over samples
    const logits = kiln.noGrad(() => model.forward(kiln.tensor(valSet.x, [valSet.n, 2])));
    const whole = kiln.crossEntropy(logits, kiln.tensor(valSet.y, [valSet.n]));
    assertClose([a.loss], await read(whole), { atol: 1e-5, rtol: 1e-5 });
    expect(a.accuracy).toBeCloseTo(await accuracyOf(logits, valSet.y), 6);

    const test = train.testSet(batches(xorData(100, 9), 30));
    const first = await kiln.evaluate(model, test, { loss, metrics: ['accuracy'], prefix: 'test' });
    expect(Object.keys(first).sort()).toEqual(['testAccuracy', 'testLoss']);
    expect(warn).not.toHaveBeenCalled();
    const second = await kiln.evaluate(model, test, { loss, metrics: ['accuracy'], prefix: 'test' });
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0][0])).toMatch(/test set has already been evaluated/);
    expect(second).toEqual(first);
    kiln.dispose([logits, whole]);
    model.dispose();
  });

  it('predict concatenates batch outputs in order (and accepts one tensor), without gradients, in eval mode', async () => {
    const model = new TinyMlp(2, 8, 3);
    const all = kiln.tensor(valSet.x, [valSet.n, 2]);
    const want = await read(kiln.noGrad(() => model.forward(all)));
    const fromBatches = await kiln.predict(model, batches(valSet, 64));
    expect([...fromBatches.shape]).toEqual([200, 3]);
    expect(fromBatches.requiresGrad).toBe(false);
    expect(model.training).toBe(false);
    assertClose(await read(fromBatches), want, { atol: 1e-6, rtol: 1e-6 });
    const fromTensor = await kiln.predict(model, all);
    expect([...fromTensor.shape]).toEqual([200, 3]);
    expect(fromTensor.requiresGrad).toBe(false);
    assertClose(await read(fromTensor), want, { atol: 1e-6, rtol: 1e-6 });
    // an async iterable works too
    async function* asyncBatches() {
      for (const b of batches(valSet, 70) as Iterable<{ x: kiln.Tensor; y: kiln.Tensor }>) yield b;
    }
    const fromAsync = await kiln.predict(model, asyncBatches());
    assertClose(await read(fromAsync), want, { atol: 1e-6, rtol: 1e-6 });
    kiln.dispose([all, fromBatches, fromTensor, fromAsync]);
    model.dispose();
  });

  it('initialEpoch resumes the epoch count: callbacks see epochs initialEpoch..epochs', async () => {
    const model = new TinyMlp(2, 4, 2);
    const opt = new optim.SGD(model.parameters(), { lr: 0.1 });
    const seen: number[] = [];
    const history = await kiln.fit(model, batches(trainSet, 128), {
      epochs: 5,
      initialEpoch: 4,
      loss,
      optimizer: opt,
      callbacks: [{ onEpochEnd: (epoch) => void seen.push(epoch) }],
      verbose: 0,
    });
    expect(seen).toEqual([4, 5]);
    expect(history.epochs.length).toBe(2);
    opt.dispose();
    model.dispose();
  });
});
