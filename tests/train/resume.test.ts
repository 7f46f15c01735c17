/**
 * A run stopped after a checkpoint and resumed with fresh objects finishes exactly like an
 * uninterrupted run: same weights, same epoch logs, same early stop. Uses the real DataLoader
 * (per-epoch seeded order), Adam, ReduceLROnPlateau and EarlyStopping with best-weights restore.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { forEachBackend } from '../backends.js';
import { TinyMlp, xorData } from './fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-resume-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

forEachBackend((backend) => {
  describe('resume from a checkpoint', () => {
    const train = xorData(256, 1);
    const val = xorData(128, 2);

    /**
     * Runs fit up to `epochs` (resuming from `ckpt` if it exists); returns final weights and logs.
     * `customStep`: the same objective through a trainStep that also logs a scalar.
     */
    async function run(ckpt: string, epochs: number, customStep = false): Promise<{ weights: Record<string, number[]>; logs: string }> {
      const model = new TinyMlp(2, 16, 2, 7);
      const optimizer = new kiln.optim.Adam(model.parameters(), { lr: 0.01 });
      const plateau = new kiln.optim.ReduceLROnPlateau(optimizer, { patience: 1, factor: 0.5 });
      const earlyStopping = new kiln.train.EarlyStopping({ monitor: 'valLoss', patience: 2, minDelta: 0.01 });
      const loader = new kiln.data.DataLoader(new kiln.data.TensorDataset(train.x, [2], train.y), { batchSize: 32, shuffle: true, seed: 3 });
      const valLoader = new kiln.data.DataLoader(new kiln.data.TensorDataset(val.x, [2], val.y), { batchSize: 64 });
      const initialEpoch = kiln.train.resume(ckpt, model, optimizer, plateau, earlyStopping);
      loader.epoch = initialEpoch - 1;
      const logPath = `${ckpt}.csv`;
      await kiln.fit(model, loader, {
        epochs,
        initialEpoch,
        verbose: 0,
        ...(customStep
          ? {
              trainStep: ({ x, y }: kiln.train.Batch, ctx: kiln.train.StepContext) => {
                const outputs = ctx.model.forward(x);
                const loss = kiln.crossEntropy(outputs, y!);
                ctx.log('meanLogit', outputs.mean());
                return { loss, outputs, targets: y };
              },
            }
          : { loss: (o: kiln.Tensor, y: kiln.Tensor) => kiln.crossEntropy(o, y) }),
        optimizer,
        metrics: ['accuracy'],
        validationData: valLoader,
        callbacks: [
          new kiln.train.LRScheduler(plateau, 'valLoss'),
          earlyStopping,
          new kiln.train.ModelCheckpoint(ckpt, { schedule: plateau, earlyStopping }),
          new kiln.train.MetricsLogger(logPath, { append: initialEpoch > 1 }),
        ],
      });
      const weights = await model.weights();
      model.dispose();
      optimizer.dispose();
      return { weights, logs: readFileSync(logPath, 'utf8') };
    }

    it('a resumed run ends bit-identical to an uninterrupted one', async () => {
      const before = kiln.memory().numTensors;
      const whole = await run(join(dir, `${backend}-whole.safetensors`), 12);
      const split = join(dir, `${backend}-split.safetensors`);
      await run(split, 5); // "killed" after epoch 5's checkpoint
      const resumed = await run(split, 12);
      expect(whole.logs.trim().split('\n').length - 1, 'the split happens mid-run').toBeGreaterThan(6);
      expect(resumed.logs.split("\n")).toEqual(whole.logs.split("\n"));
      expect(resumed.weights).toEqual(whole.weights);
      expect(kiln.memory().numTensors).toBe(before);
    });

    it('with a custom trainStep too: early stopping, the schedule, checkpoints and resume work unchanged', async () => {
      const whole = await run(join(dir, `${backend}-custom-whole.safetensors`), 12, true);
      const split = join(dir, `${backend}-custom-split.safetensors`);
      await run(split, 5, true);
      const resumed = await run(split, 12, true);
      expect(whole.logs.split('\n')[0]).toContain('meanLogit');
      expect(resumed.logs.split('\n')).toEqual(whole.logs.split('\n'));
      expect(resumed.weights).toEqual(whole.weights);
      // and the custom step trains exactly as the default one
      const plain = await run(join(dir, `${backend}-plain.safetensors`), 12);
      expect(whole.weights).toEqual(plain.weights);
    });

    it('a checkpoint from a different model is rejected, naming the keys', async () => {
      const ckpt = join(dir, `${backend}-other.safetensors`);
      await run(ckpt, 1);
      const other = new TinyMlp(2, 8, 2, 7);
      const optimizer = new kiln.optim.Adam(other.parameters(), { lr: 0.05 });
      expect(() => kiln.train.resume(ckpt, other, optimizer)).toThrow(/mismatch/);
      other.dispose();
      optimizer.dispose();
    });
  });
});

forEachBackend((backend) => {
  it('resuming a run that had already stopped early trains no further', async () => {
    const data = xorData(64, 4);
    const ckpt = join(dir, `${backend}-stopped.safetensors`);
    const fitOnce = async (epochs: number): Promise<number> => {
      const model = new TinyMlp(2, 8, 2, 3);
      const optimizer = new kiln.optim.SGD(model.parameters(), { lr: 1e-9 });
      const earlyStopping = new kiln.train.EarlyStopping({ monitor: 'valLoss', patience: 1 });
      const initialEpoch = kiln.train.resume(ckpt, model, optimizer, undefined, earlyStopping);
      const loader = new kiln.data.DataLoader(new kiln.data.TensorDataset(data.x, [2], data.y), { batchSize: 32 });
      const h = await kiln.fit(model, loader, {
        epochs, initialEpoch, verbose: 0, optimizer, loss: (o, y) => kiln.crossEntropy(o, y),
        validationData: new kiln.data.DataLoader(new kiln.data.TensorDataset(data.x, [2], data.y), { batchSize: 64 }),
        callbacks: [earlyStopping, new kiln.train.ModelCheckpoint(ckpt, { earlyStopping })],
      });
      model.dispose();
      optimizer.dispose();
      return h.epochs.length;
    };
    expect(await fitOnce(10)).toBeLessThan(10); // lr 1e-9: no improvement, stops after patience
    expect(await fitOnce(10)).toBe(0);
  });
});
