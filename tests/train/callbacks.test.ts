/**
 * Callbacks in a real fit: EarlyStopping stops and restores the weights of the best epoch
 * (compared with snapshots taken at every epoch end), LRScheduler with ReduceLROnPlateau cuts
 * the lr that the logs report, MetricsLogger writes CSV and JSONL matching the history.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, expect, it, vi } from 'vitest';
import * as kiln from '../../ts/index.js';
import { optim, train } from '../../ts/index.js';
import type { Callback } from '../../ts/train/index.js';
import { forEachBackend } from '../backends.js';
import { assertEqual, read } from '../helpers.js';
import { plateauLrs } from '../optim/reference.js';
import { TinyMlp, batches, flipped, xorData } from './fixtures.js';

const trainSet = xorData(256, 1);
const loss = (out: kiln.Tensor, y: kiln.Tensor) => kiln.crossEntropy(out, y);
const dir = mkdtempSync(join(tmpdir(), 'kiln-train-'));

/** Records the model's weights at every epoch end (runs before the callbacks after it). */
class WeightRecorder implements Callback {
  readonly byEpoch = new Map<number, Record<string, number[]>>();
  constructor(private readonly model: TinyMlp) {}
  async onEpochEnd(epoch: number): Promise<void> {
    this.byEpoch.set(epoch, await this.model.weights());
  }
}

/** Writes a scripted value into the logs under `key` (as a custom metric callback would). */
class ScriptedMetric implements Callback {
  constructor(private readonly key: string, private readonly values: number[]) {}
  onEpochEnd(epoch: number, logs: Record<string, number>): void {
    logs[this.key] = this.values[epoch - 1];
  }
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

forEachBackend(() => {
  beforeEach(() => {
    vi.spyOn(console, 'log').mockImplementation(() => {});
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('EarlyStopping on valLoss stops after `patience` bad epochs and restores the best epoch’s weights', async () => {
    const model = new TinyMlp(2, 16, 2, 5);
    const opt = new optim.Adam(model.parameters(), { lr: 0.03 });
    const recorder = new WeightRecorder(model);
    const stopper = new train.EarlyStopping({ patience: 2 });
    // labels flipped: the better the model learns the training set, the worse the validation loss
    const history = await kiln.fit(model, batches(trainSet, 32), {
      epochs: 20,
      loss,
      optimizer: opt,
      validationData: batches(flipped(xorData(100, 2)), 50),
      callbacks: [recorder, stopper],
      verbose: 0,
    });
    const valLosses = history.epochs.map((e) => e.valLoss);
    const best = valLosses.indexOf(Math.min(...valLosses)) + 1;
    expect(history.stoppedEarly).toBe(true);
    expect(history.stopReason).toMatch(/valLoss has not improved for 2 epochs/);
    expect(stopper.bestEpoch).toBe(best);
    expect(history.epochs.length, 'stops exactly `patience` epochs after the best').toBe(best + 2);
    const restored = await model.weights();
    const snapshot = recorder.byEpoch.get(best)!;
    for (const k of Object.keys(snapshot)) assertEqual(restored[k], snapshot[k], `${k} equals its value at the best epoch ${best}`);
    const lastSnapshot = recorder.byEpoch.get(history.epochs.length)!;
    expect(restored.w1, 'the weights changed after the best epoch, so the restore did something').not.toEqual(lastSnapshot.w1);
    // the parameters kept their identity: the same optimizer goes on training them
    expect(opt.parameters.every((p, i) => p === model.parameters()[i] && !p.isDisposed && p.requiresGrad)).toBe(true);
    await kiln.fit(model, batches(trainSet, 64), { epochs: 1, loss, optimizer: opt, verbose: 0 });
    expect((await model.weights()).w1).not.toEqual(restored.w1);
    opt.dispose();
    model.dispose();
  });

  it('EarlyStopping on a metric whose name contains "acc" maximizes it; best epoch in the middle', async () => {
    const model = new TinyMlp(2, 8, 2, 6);
    const opt = new optim.SGD(model.parameters(), { lr: 0.05 });
    const recorder = new WeightRecorder(model);
    const stopper = new train.EarlyStopping({ monitor: 'scriptedAcc', patience: 3 });
    const history = await kiln.fit(model, batches(trainSet, 64), {
      epochs: 20,
      loss,
      optimizer: opt,
      callbacks: [new ScriptedMetric('scriptedAcc', [0.1, 0.5, 0.9, 0.8, 0.85, 0.9, 0.95, 0.99]), recorder, stopper],
      verbose: 0,
    });
    // best 0.9 at epoch 3; epochs 4, 5 and 6 do not beat it (0.9 is not > 0.9): stop after epoch 6
    expect(stopper.bestEpoch).toBe(3);
    expect(history.epochs.length).toBe(6);
    const restored = await model.weights();
    for (const [k, v] of Object.entries(recorder.byEpoch.get(3)!)) assertEqual(restored[k], v, `${k} at epoch 3`);
    opt.dispose();
    model.dispose();
  });

  it('EarlyStopping with restoreBestWeights false keeps the last weights; a missing monitor key errors', async () => {
    const model = new TinyMlp(2, 8, 2, 7);
    const opt = new optim.SGD(model.parameters(), { lr: 0.05 });
    const recorder = new WeightRecorder(model);
    const history = await kiln.fit(model, batches(trainSet, 64), {
      epochs: 10,
      loss,
      optimizer: opt,
      callbacks: [new ScriptedMetric('score', [3, 2, 2.5, 2.5]), recorder, new train.EarlyStopping({ monitor: 'score', patience: 2, restoreBestWeights: false })],
      verbose: 0,
    });
    expect(history.epochs.length).toBe(4);
    const restored = await model.weights();
    for (const [k, v] of Object.entries(recorder.byEpoch.get(4)!)) assertEqual(restored[k], v, `${k} at the last epoch`);
    await expect(
      kiln.fit(model, batches(trainSet, 64), { epochs: 1, loss, optimizer: opt, callbacks: [new train.EarlyStopping({ monitor: 'valAccuracy' })], verbose: 0 }),
    ).rejects.toThrow(/EarlyStopping: no 'valAccuracy' in the epoch logs \(have: loss, lr\)/);
    opt.dispose();
    model.dispose();
  });

  it('LRScheduler with ReduceLROnPlateau: the logged lr follows the plateau rule on valLoss', async () => {
    const model = new TinyMlp(2, 16, 2, 8);
    const opt = new optim.Adam(model.parameters(), { lr: 0.02 });
    const options = { patience: 1, factor: 0.5 };
    const history = await kiln.fit(model, batches(trainSet, 32), {
      epochs: 8,
      loss,
      optimizer: opt,
      validationData: batches(flipped(xorData(100, 3)), 50),
      callbacks: [new train.LRScheduler(new optim.ReduceLROnPlateau(opt, options), 'valLoss')],
      verbose: 0,
    });
    const lrs = history.epochs.map((e) => e.lr);
    // logs.lr is the lr the epoch trained with: the schedule's output after the previous epoch
    const want = [0.02, ...plateauLrs(0.02, history.epochs.map((e) => e.valLoss), options).slice(0, -1)];
    expect(lrs).toEqual(want);
    expect(new Set(lrs).size, `the lr changed at least once: ${lrs}`).toBeGreaterThan(1);
    expect(opt.lr).toBeLessThan(0.02);
    await expect(
      kiln.fit(model, batches(trainSet, 64), { epochs: 1, loss, optimizer: opt, callbacks: [new train.LRScheduler(new optim.ReduceLROnPlateau(opt), 'valLoss')], verbose: 0 }),
    ).rejects.toThrow(/LRScheduler: no 'valLoss'/);
    opt.dispose();
    model.dispose();
  });

  it('MetricsLogger writes one CSV row and one JSONL line per epoch matching the history', async () => {
    const model = new TinyMlp(2, 8, 2, 9);
    const opt = new optim.SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
    const csv = join(dir, 'nested', 'run', 'metrics.csv');
    const jsonl = join(dir, 'metrics.jsonl');
    const history = await kiln.fit(model, batches(trainSet, 64), {
      epochs: 3,
      loss,
      optimizer: opt,
      validationData: batches(xorData(60, 4), 30),
      metrics: ['accuracy'],
      callbacks: [new train.MetricsLogger(csv), new train.MetricsLogger(jsonl)],
      verbose: 0,
    });
    const lines = readFileSync(csv, 'utf8').trimEnd().split('\n');
    expect(lines[0]).toBe('epoch,loss,accuracy,valLoss,valAccuracy,lr');
    expect(lines.length).toBe(4);
    lines.slice(1).forEach((line, i) => {
      const [epoch, ...rest] = line.split(',').map(Number);
      expect(epoch).toBe(i + 1);
      const e = history.epochs[i];
      expect(rest).toEqual([e.loss, e.accuracy, e.valLoss, e.valAccuracy, e.lr]);
    });
    const records = readFileSync(jsonl, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(records).toEqual(history.epochs.map((e, i) => ({ epoch: i + 1, ...e })));

    // a second fit starts the files afresh
    await kiln.fit(model, batches(trainSet, 128), { epochs: 1, loss, optimizer: opt, callbacks: [new train.MetricsLogger(csv)], verbose: 0 });
    expect(readFileSync(csv, 'utf8').trimEnd().split('\n')).toHaveLength(2);
    opt.dispose();
    model.dispose();
  });

  it('an EarlyStopping instance reused for a second fit starts afresh (as Keras resets on train begin)', async () => {
    const model = new TinyMlp(2, 8, 2, 10);
    const opt = new optim.SGD(model.parameters(), { lr: 0.05 });
    const stopper = new train.EarlyStopping({ monitor: 'score', patience: 2 });
    const first = await kiln.fit(model, batches(trainSet, 128), { epochs: 10, loss, optimizer: opt, callbacks: [new ScriptedMetric('score', [1, 0.5, 0.6, 0.7]), stopper], verbose: 0 });
    expect(first.epochs.length).toBe(4);
    // the second run improves every epoch, but never reaches the first run's best (0.5)
    const second = await kiln.fit(model, batches(trainSet, 128), { epochs: 5, loss, optimizer: opt, callbacks: [new ScriptedMetric('score', [3, 2, 1.5, 1.2, 1.1]), stopper], verbose: 0 });
    expect(second.stoppedEarly, second.stopReason).toBe(false);
    expect(second.epochs.length).toBe(5);
    opt.dispose();
    model.dispose();
  });
  it('batch callbacks see every batch in order, with its loss (equal to the loss of those weights on it) and the global step', async () => {
    const model = new TinyMlp(2, 8, 2, 11);
    const opt = new optim.SGD(model.parameters(), { lr: 0.1 });
    const events: string[] = [];
    const losses: number[] = [];
    // the loss reported for batch 1 of epoch 1 is the loss of the initial weights on that batch
    const x0 = kiln.tensor(trainSet.x.slice(0, 128), [64, 2]);
    const y0 = kiln.tensor(trainSet.y.slice(0, 64), [64]);
    const expected = (await read(kiln.noGrad(() => loss(model.forward(x0), y0))))[0];
    kiln.dispose([x0, y0]);
    const history = await kiln.fit(model, batches(trainSet, 64), {
      epochs: 2,
      loss,
      optimizer: opt,
      verbose: 0,
      callbacks: [
        {
          onEpochBegin: (epoch) => void events.push(`epoch ${epoch}`),
          onBatchBegin: (batch, logs) => void events.push(`begin ${logs.epoch}.${batch} #${logs.globalStep}`),
          onBatchEnd: (batch, logs) => {
            events.push(`end ${logs.epoch}.${batch} #${logs.globalStep}`);
            losses.push(logs.loss!);
            expect(logs.lr).toBe(0.1);
          },
        },
      ],
    });
    const want: string[] = [];
    for (let e = 1; e <= 2; e++) {
      want.push(`epoch ${e}`);
      for (let b = 1; b <= 4; b++) want.push(`begin ${e}.${b} #${(e - 1) * 4 + b}`, `end ${e}.${b} #${(e - 1) * 4 + b}`);
    }
    expect(events).toEqual(want);
    expect(losses[0]).toBeCloseTo(expected, 5);
    // the epoch loss is the sample-weighted mean of the batch losses (all batches have 64 samples)
    expect(history.epochs[0].loss).toBeCloseTo(losses.slice(0, 4).reduce((a, b) => a + b) / 4, 5);
    opt.dispose();
    model.dispose();
  });
});
