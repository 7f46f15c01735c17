/**
 * The training loop: `fit` (epochs of forward, backward and one fused optimizer step per
 * parameter, validation each epoch, callbacks), `evaluate` and `predict`. PyTorch users can keep
 * their own loop; this one is the Keras-style shortcut with the same pieces.
 */

import { tidy } from '../engine.js';
import type { Optimizer } from '../optim/optimizer.js';
import type { Device, Tensor } from '../tensor.js';
import { noGrad } from '../autograd.js';
import { concat } from '../ops/shape.js';
import type { Callback, TrainingContext } from './callbacks.js';
import { EpochAccumulator, type MetricName } from './metrics.js';
import { formatLogs, ProgressBar } from './progress.js';
import type { Batch, BatchSource, Logs, TrainableModel } from './types.js';

/**
 * The loss of one batch. `inputs` is the batch's input, for losses that need more than the
 * model's output (distillation runs the teacher on it).
 */
export type LossFn = (outputs: Tensor, targets: Tensor, inputs: Tensor) => Tensor;

/** What fit does when a step's loss is NaN or ±Infinity. */
export type NonFinitePolicy = 'stop' | 'skip';

export interface FitOptions {
  epochs: number;
  loss: LossFn;
  optimizer: Optimizer;
  validationData?: BatchSource;
  callbacks?: Callback[];
  metrics?: MetricName[];
  /** 0: silent; 1: progress bar and epoch lines (default). */
  verbose?: 0 | 1;
  /** Epoch to start from (1-based) when resuming from a checkpoint. */
  initialEpoch?: number;
  /**
   * A step whose loss is NaN or ±Infinity never updates the weights. 'stop' (default) ends
   * training with an Error naming the epoch and step; 'skip' drops that batch, counts it in the
   * epoch's logs (`skippedSteps`) and goes on, and stops only if a whole epoch is skipped.
   */
  onNonFiniteLoss?: NonFinitePolicy;
  /**
   * Called after every training step (e.g. to draw a progress bar in a web page, where there is
   * no terminal): the epoch, the step, the steps per epoch if known, and the running loss.
   */
  onStep?: (info: StepInfo) => void;
  /**
   * Data-parallel training over MPI (docs/distributed.md): `model` must be a
   * `kiln.distributed.DistributedDataParallel` and the data a `DistributedDataLoader`. Each step
   * averages the gradients across ranks; the loss guard, the epoch's loss and metrics and the
   * validation results are averaged across ranks, so every rank sees the same logs (and makes
   * the same early-stopping decisions); only rank 0 shows progress.
   */
  distributed?: boolean;
}

/** What fit needs of a data-parallel model (DistributedDataParallel provides it). */
interface DataParallel {
  syncGradients(): number;
  /** The mean across ranks of a one-element loss. */
  meanAcrossRanks(value: number): number;
  /** Each numeric entry replaced by its mean across ranks. */
  meanLogsAcrossRanks(logs: Logs): Logs;
  readonly isLoggingRank: boolean;
}

function dataParallel(model: TrainableModel): DataParallel {
  const m = model as unknown as Partial<DataParallel>;
  if (typeof m.syncGradients !== 'function' || typeof m.meanAcrossRanks !== 'function' || typeof m.meanLogsAcrossRanks !== 'function') {
    throw new Error('fit: distributed: true needs the model wrapped in kiln.distributed.DistributedDataParallel (after kiln.distributed.init())');
  }
  return m as DataParallel;
}

/** What `onStep` receives. */
export interface StepInfo {
  epoch: number;
  epochs: number;
  step: number;
  /** Batches per epoch (the data's `length`), if known. */
  steps?: number;
  samples: number;
  /** Exponential moving average of the step losses of this epoch. */
  loss: number;
}

export interface History {
  /** Per epoch: loss, metrics, valLoss, val metrics, lr. */
  epochs: Logs[];
  stoppedEarly: boolean;
  stopReason?: string;
}

async function* batches(source: BatchSource, model: TrainableModel): AsyncGenerator<Batch> {
  const iterable = Symbol.asyncIterator in source ? (source as AsyncIterable<Batch>) : (source as Iterable<Batch>);
  // Batches go where the model is (PyTorch's `x.to(device)` in every loop, done here): data stays
  // on the CPU, and a model moved with model.to('gpu') gets its batches uploaded.
  const device = model.parameters()[0]?.device ?? 'cpu';
  for await (const batch of iterable) yield device === 'cpu' ? batch : { x: moved(batch.x, device), y: moved(batch.y, device) };
}

/** `t` on `device`; the original is disposed when a copy was made (the batch owns its tensors). */
function moved(t: Tensor, device: Device): Tensor {
  if (t.device === device) return t;
  const m = t.to(device);
  t.dispose();
  return m;
}

/** Trains `model` for `epochs` epochs; returns per-epoch logs. */
export async function fit(model: TrainableModel, trainData: BatchSource, options: FitOptions): Promise<History> {
  const { optimizer, loss: lossFn } = options;
  if (!(options.epochs >= 1)) throw new Error(`fit: epochs must be >= 1, got ${options.epochs}`);
  const metrics = options.metrics ?? [];
  const callbacks = options.callbacks ?? [];
  const parallel = options.distributed ? dataParallel(model) : null;
  const verbose = parallel && !parallel.isLoggingRank ? 0 : (options.verbose ?? 1);
  const nonFinite = options.onNonFiniteLoss ?? 'stop';
  if (nonFinite !== 'stop' && nonFinite !== 'skip') throw new Error(`fit: onNonFiniteLoss must be 'stop' or 'skip', got '${String(nonFinite)}'`);
  const history: History = { epochs: [], stoppedEarly: false };
  let stopReason: string | undefined;
  const ctx: TrainingContext = { model, optimizer, stopTraining: (reason) => (stopReason = reason) };
  for (const cb of callbacks) await cb.onTrainBegin?.(ctx);

  for (let epoch = options.initialEpoch ?? 1; epoch <= options.epochs && stopReason === undefined; epoch++) {
    model.train();
    const bar = verbose ? new ProgressBar(`epoch ${epoch}/${options.epochs}`, trainData.length) : null;
    const acc = new EpochAccumulator(metrics);
    let step = 0;
    let samples = 0;
    let running = 0;
    let skipped = 0;
    const lr = optimizer.lr;
    try {
      for await (const { x, y } of batches(trainData, model)) {
        step++;
        let value = NaN;
        try {
          tidy(() => {
            optimizer.zeroGrad();
            const out = model.forward(x);
            const loss = lossFn(out, y, x);
            // One readback per step, before the update: the running loss doubles as the guard
            // that keeps a non-finite loss away from the weights.
            // Distributed: every rank must skip (or stop) together, so the guard reads the global loss.
            value = parallel ? parallel.meanAcrossRanks(loss.dataSync()[0]) : loss.dataSync()[0];
            if (!Number.isFinite(value)) return;
            loss.backward();
            parallel?.syncGradients();
            optimizer.step();
            acc.add(loss.detach(), out.detach(), y);
          });
        } finally {
          x.dispose();
          y.dispose();
        }
        if (!Number.isFinite(value)) {
          if (nonFinite === 'stop') {
            throw new Error(
              `fit: the loss is ${value} at epoch ${epoch}, step ${step} (lr ${optimizer.lr}); training stopped before this step updated the weights. ` +
                "Check the data for NaN/Inf and try a lower learning rate, or pass onNonFiniteLoss: 'skip' to drop such batches.",
            );
          }
          skipped++;
          continue;
        }
        samples += y.shape[0] ?? 1;
        running = step - skipped === 1 ? value : 0.98 * running + 0.02 * value;
        bar?.update(step, samples, running);
        options.onStep?.({ epoch, epochs: options.epochs, step, steps: trainData.length, samples, loss: running });
      }
      if (step === 0) throw new Error('fit: the training data produced no batches (is the dataset empty?)');
      if (skipped === step) {
        throw new Error(`fit: every one of the ${step} steps of epoch ${epoch} had a non-finite loss and was skipped; check the data for NaN/Inf`);
      }
      let logs: Logs = acc.read();
      if (skipped > 0) logs.skippedSteps = skipped;
      if (options.validationData) Object.assign(logs, await evaluate(model, options.validationData, { loss: lossFn, metrics, prefix: 'val' }));
      if (parallel) logs = parallel.meanLogsAcrossRanks(logs);
      logs.lr = lr;
      history.epochs.push({ epoch, ...logs });
      bar?.finish(formatLogs(logs));
      for (const cb of callbacks) await cb.onEpochEnd?.(epoch, logs, ctx);
    } finally {
      acc.dispose();
    }
    if (stopReason !== undefined) {
      history.stoppedEarly = true;
      history.stopReason = stopReason;
      if (verbose) console.log(stopReason);
      break;
    }
  }
  if (stopReason !== undefined && !history.stoppedEarly) {
    history.stoppedEarly = true;
    history.stopReason = stopReason;
    if (verbose) console.log(stopReason);
  }
  for (const cb of callbacks) await cb.onTrainEnd?.(ctx);
  return history;
}

export interface EvaluateOptions {
  loss: LossFn;
  metrics?: MetricName[];
  /** Prefix for the log keys ('val' -> valLoss, valAccuracy). */
  prefix?: string;
}

const evaluatedTestSets = new WeakSet<object>();

/**
 * Marks data as the held-out test set: evaluating it a second time prints a loud warning,
 * because a test set used to make decisions no longer gives an unbiased estimate.
 */
export function testSet<T extends BatchSource>(data: T): T & { isTestSet: true } {
  return Object.assign(data, { isTestSet: true as const });
}

/** Mean loss and metrics over `data` in eval mode, without recording gradients. */
export async function evaluate(model: TrainableModel, data: BatchSource, options: EvaluateOptions): Promise<Logs> {
  if ((data as { isTestSet?: boolean }).isTestSet) {
    if (evaluatedTestSets.has(data)) {
      console.warn(
        '\n!!! WARNING: this test set has already been evaluated. Evaluating it again (and choosing ' +
          'models by it) makes the test score an optimistic, biased estimate. Use the validation ' +
          'split for decisions and the test split exactly once. !!!\n',
      );
    }
    evaluatedTestSets.add(data);
  }
  model.eval();
  const acc = new EpochAccumulator(options.metrics ?? []);
  try {
    for await (const { x, y } of batches(data, model)) {
      noGrad(() =>
        tidy(() => {
          const out = model.forward(x);
          acc.add(options.loss(out, y, x), out, y);
        }),
      );
      x.dispose();
      y.dispose();
    }
    return acc.read(options.prefix);
  } finally {
    acc.dispose();
  }
}

/** Model outputs for every batch of `data` (or one tensor), concatenated along axis 0. */
export async function predict(model: TrainableModel, data: Tensor | BatchSource): Promise<Tensor> {
  model.eval();
  // tidy frees the layers' intermediates; only the output survives.
  const forward = (x: Tensor): Tensor => noGrad(() => tidy(() => model.forward(x)));
  if ('isKilnTensor' in data) {
    // A tensor on the CPU for a model on the GPU is moved for the call (the caller keeps theirs).
    const device = model.parameters()[0]?.device ?? 'cpu';
    const x = data as Tensor;
    if (x.device === device) return forward(x);
    const onDevice = x.to(device);
    try {
      return forward(onDevice);
    } finally {
      onDevice.dispose();
    }
  }
  const outs: Tensor[] = [];
  for await (const { x, y } of batches(data as BatchSource, model)) {
    outs.push(forward(x));
    x.dispose();
    y.dispose();
  }
  const all = concat(outs, 0);
  for (const o of outs) o.dispose();
  return all;
}
