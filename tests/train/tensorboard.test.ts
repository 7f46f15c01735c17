/**
 * The TensorBoard callback, read back by the `tensorboard` Python package's own reader (its
 * TFRecord reader checks both masked CRC32Cs of every record; EventAccumulator is the loader
 * behind TensorBoard itself). A real fit writes per-step and per-epoch scalars, the learning rate,
 * weight and gradient histograms and a samples image; every value is compared with what the run
 * recorded independently (history, weights and gradients read at each epoch's end, the pixels).
 *
 * `npm test` installs tensorboard and pillow into Kiln's Python environment (scripts/python.mjs)
 * and passes its interpreter as KILN_PYTHON.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import * as kiln from '../../ts/index.js';
import { optim, train } from '../../ts/index.js';
import type { Callback, TrainingContext } from '../../ts/train/index.js';
import { crc32c, maskedCrc32c } from '../../ts/train/tensorboard/index.js';
import { forEachBackend } from '../backends.js';
import { TinyMlp, batches, xorData } from './fixtures.js';

const script = fileURLToPath(new URL('./read_tensorboard.py', import.meta.url));
const pythonBin = process.env.KILN_PYTHON ?? 'python3';
const dir = mkdtempSync(join(tmpdir(), 'kiln-tb-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Histo { step: number; min: number; max: number; num: number; sum: number; sumSquares: number; bucketLimit: number[]; bucket: number[] }
interface Read {
  records: number;
  fileVersions: string[];
  scalars: Record<string, [number, number][]>;
  histograms: Record<string, Histo[]>;
  images: Record<string, { step: number; width: number; height: number; pixels: number[]; shape: number[] }[]>;
}

function readLogDir(logDir: string): Read {
  const r = spawnSync(pythonBin, [script, logDir], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${pythonBin} read_tensorboard.py failed (exit ${r.status}):\n${r.stderr}`);
  return JSON.parse(r.stdout) as Read;
}

/** Records weights and gradients at each epoch end (placed before TensorBoard in the callbacks). */
class ParameterRecorder implements Callback {
  readonly weights = new Map<number, Record<string, number[]>>();
  readonly grads = new Map<number, Record<string, number[]>>();
  onEpochEnd(epoch: number, _logs: unknown, ctx: TrainingContext): void {
    const w: Record<string, number[]> = {};
    const g: Record<string, number[]> = {};
    for (const [k, p] of Object.entries(ctx.model.stateDict())) {
      w[k] = Array.from(p.dataSync());
      const grad = p.grad;
      if (grad) g[k] = Array.from(grad.dataSync());
      grad?.dispose();
    }
    this.weights.set(epoch, w);
    this.grads.set(epoch, g);
  }
}

/** Checks a histogram read back against the raw values it summarises (float32 values held as doubles). */
function expectHistogramOf(h: Histo, values: number[]): void {
  let sum = 0;
  let sq = 0;
  for (const v of values) {
    sum += v;
    sq += v * v;
  }
  expect(h.num).toBe(values.length);
  expect(h.min).toBe(Math.min(...values));
  expect(h.max).toBe(Math.max(...values));
  expect(h.sum).toBeCloseTo(sum, 9);
  expect(h.sumSquares).toBeCloseTo(sq, 9);
  expect(h.bucketLimit.at(-1)).toBe(h.max);
  // each value counted once, in the bucket whose (previous limit, limit] holds it
  const counts = new Array<number>(h.bucket.length).fill(0);
  for (const v of values) counts[h.bucketLimit.findIndex((limit) => v <= limit)]++;
  expect(h.bucket).toEqual(counts);
}

describe('TFRecord checksums', () => {
  it('crc32c matches the CRC-32C check value and TensorFlow’s masking', () => {
    expect(crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283);
    // masked = rotr15(crc) + 0xa282ead8, here from the check value
    const crc = 0xe3069283;
    expect(maskedCrc32c(new TextEncoder().encode('123456789'))).toBe((((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeros
  });
});

forEachBackend(() => {
  beforeEach(() => {
    vi.spyOn(console, 'log').mockImplementation(() => {});
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('a fit’s scalars, learning rate, histograms and samples read back with tensorboard’s own reader', async () => {
    const logDir = join(dir, `run-${kiln.getBackend()}`);
    const model = new TinyMlp(2, 8, 2, 3);
    const opt = new optim.SGD(model.parameters(), { lr: 0.1 });
    const schedule = new optim.StepDecay(opt, 1, 0.5);
    const samplePixels = Float32Array.from({ length: 4 * 5 * 6 }, (_, i) => (i % 17) / 16);
    const tb = new train.TensorBoard(logDir, {
      histogramBins: 7,
      samples: (epoch) => kiln.tensor(samplePixels.map((v) => (v * epoch) % 1), [4, 5, 6]),
      sampleGrid: { cols: 2, padding: 1 },
    });
    const recorder = new ParameterRecorder();
    const stepLogs: { loss: number; lr: number }[] = [];
    const history = await kiln.fit(model, batches(xorData(64, 4), 16), {
      epochs: 3,
      loss: (out, y) => kiln.crossEntropy(out, y),
      optimizer: opt,
      metrics: ['accuracy'],
      validationData: batches(xorData(32, 5), 16),
      callbacks: [new train.LRScheduler(schedule), recorder, tb, { onBatchEnd: (_b, logs) => void stepLogs.push({ loss: logs.loss!, lr: logs.lr }) }],
    });

    const read = readLogDir(logDir);
    expect(read.fileVersions).toEqual(['brain.Event:2']);

    // per step: the batch's loss and the lr, at global steps 1..12 (4 batches x 3 epochs)
    expect(read.scalars['batch/loss']!.map(([s]) => s)).toEqual(stepLogs.map((_, i) => i + 1));
    read.scalars['batch/loss']!.forEach(([, v], i) => expect(v).toBe(Math.fround(stepLogs[i]!.loss)));
    read.scalars['batch/lr']!.forEach(([, v], i) => expect(v).toBe(Math.fround(stepLogs[i]!.lr)));

    // per epoch: every log of the history, lr included (0.1, 0.05, 0.025 from the schedule)
    for (const key of ['loss', 'accuracy', 'valLoss', 'valAccuracy', 'lr']) {
      expect(read.scalars[`epoch/${key}`], key).toEqual(history.epochs.map((e) => [e.epoch, Math.fround(e[key]!)]));
    }
    expect(read.scalars['epoch/lr']!.map(([, v]) => v)).toEqual([0.1, 0.05, 0.025].map(Math.fround));

    // histograms of every weight and gradient at every epoch
    for (const name of ['w1', 'b1', 'w2', 'b2']) {
      for (const [kind, recorded] of [['weights', recorder.weights], ['gradients', recorder.grads]] as const) {
        const hs = read.histograms[`${kind}/${name}`]!;
        expect(hs.map((h) => h.step)).toEqual([1, 2, 3]);
        hs.forEach((h) => expectHistogramOf(h, recorded.get(h.step)![name]!));
      }
    }
    // the weights changed between epochs (the histograms are not one snapshot repeated)
    expect(read.histograms['weights/w1']![0]!.sum).not.toBe(read.histograms['weights/w1']![2]!.sum);

    // the samples image: 4 tiles of 5x6 in 2 columns with 1 px padding -> 13 x 15 grey pixels
    const images = read.images['samples']!;
    expect(images.map((i) => i.step)).toEqual([1, 2, 3]);
    for (const image of images) {
      expect([image.width, image.height]).toEqual([15, 13]);
      const pixel = (n: number, r: number, c: number) => image.pixels[(1 + Math.floor(n / 2) * 6 + r) * 15 + 1 + (n % 2) * 7 + c];
      for (let n = 0; n < 4; n++)
        for (let r = 0; r < 5; r++)
          for (let c = 0; c < 6; c++) {
            const v = (samplePixels[n * 30 + r * 6 + c]! * image.step) % 1;
            expect(pixel(n, r, c)).toBe(Math.round(255 * Math.fround(v)));
          }
    }
    opt.dispose();
    model.dispose();
  });

  it('rejects a bad logDir and histogramFreq with errors naming TensorBoard', () => {
    expect(() => new train.TensorBoard('')).toThrow(/TensorBoard: logDir/);
    expect(() => new train.TensorBoard(join(dir, 'x'), { histogramFreq: -1 })).toThrow(/TensorBoard: histogramFreq/);
  });
});
