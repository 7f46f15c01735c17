/**
 * The training loop: `fit` (epochs of steps, each a forward, a backward, a gradient guard and one
 * fused optimizer update per parameter; validation each epoch; callbacks), `evaluate` and
 * `predict`. PyTorch users can keep their own loop; this one is the Keras-style shortcut with the
 * same pieces, and a Lightning-style `trainStep` for objectives of any form.
 */

import { keep, tidy } from '../engine.js';
import type { Optimizer } from '../optim/optimizer.js';
import type { Device, Tensor } from '../tensor.js';
import { noGrad } from '../autograd.js';
import { concat, stack } from '../ops/shape.js';
import type { BatchLogs, Callback, TrainingContext } from './callbacks.js';
import type { DashboardOptions } from './dashboard/callback.js';
import { createDashboard } from './dashboard/hook.js';
import { resolveMetric, type Metric, type MetricSpec } from './metrics/index.js';
import { formatLogs, ProgressBar } from './progress.js';
import { describeValue, epochBatches, inMemoryBatches, isInMemoryData, isTensor, rowCount, sampleCount, type InMemoryData } from './batches.js';
import { describeParameters, gradientFinitenessFlag, gradientFlags, nonFiniteGradientsAsync } from './gradient-guard.js';
import { EpochLogs } from './epoch-logs.js';
import { callModel, defaultStep, splitBatch, stepResult, type LossFn, type StepContext, type TrainStep } from './step.js';
import type { BatchSource, Logs, TrainableModel } from './types.js';

/** What fit does when a step's loss, or a gradient, is NaN or ±Infinity. */
export type NonFinitePolicy = 'stop' | 'skip';

export interface FitOptions {
  epochs: number;
  /** The default step's loss, loss(model(x), y); not needed with a trainStep. */
  loss?: LossFn;
  /** One optimizer, or several for a custom step that updates several parts (a GAN). */
  optimizer: Optimizer | Optimizer[];
  /** A custom step (see TrainStep); default: loss(model(x), y). */
  trainStep?: TrainStep;
  /** The step run on validation batches; default: the trainStep without gradients (with automatic optimization), else loss(model(x), y). */
  validationStep?: TrainStep;
  /** The trainStep runs backward and ctx.optimizerStep itself (a GAN's alternating updates). Default false. */
  manualOptimization?: boolean;
  /** Batches, or in-memory tensors { x, y } (cut with batchSize, not shuffled). */
  validationData?: BatchSource<unknown> | InMemoryData;
  /** In-memory data only: this fraction of the rows, taken from the end before shuffling (as Keras), is the validation set. */
  validationSplit?: number;
  /** In-memory data only: rows per batch. Default 32. */
  batchSize?: number;
  /** In-memory data only: visit the training rows in a new order each epoch. Default true. */
  shuffle?: boolean;
  /** In-memory data only: seed of the shuffles. Omitted: random. */
  seed?: number;
  /**
   * Gradient accumulation: the gradients of this many consecutive batches (each loss divided by
   * the window's size, so the update equals one on their union) make one optimizer update. The
   * last window of an epoch may be shorter; it is averaged over its own size when the data's
   * length is known (else over accumulateSteps: a proportionally smaller update). Default 1.
   */
  accumulateSteps?: number;
  callbacks?: Callback[];
  /** Names ('accuracy', 'f1', 'top5Accuracy', ...; see train.metricNames) or Metric objects. */
  metrics?: MetricSpec[];
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
   * The same for a finite loss whose gradients hold NaN or ±Infinity (sqrt or log at 0): checked
   * before every update, with one fused reduction over all gradients. Default: onNonFiniteLoss's value.
   */
  onNonFiniteGradients?: NonFinitePolicy;
  /**
   * Called after every training step (e.g. to draw a progress bar in a web page, where there is
   * no terminal): the epoch, the step, the steps per epoch if known, and the running loss.
   */
  onStep?: (info: StepInfo) => void;
  /**
   * A live view of the run: in Node a page served on 127.0.0.1 (its URL is printed; see
   * train.Dashboard for the port and keeping it open), in a browser charts appended to the page.
   */
  dashboard?: boolean | DashboardOptions;
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
  /** Per epoch: loss, metrics, logged scalars, valLoss, val metrics, lr. */
  epochs: Logs[];
  /** Per epoch: the values of metrics that are not one number (a confusion matrix), by log name. */
  details: Array<Record<string, unknown>>;
  stoppedEarly: boolean;
  stopReason?: string;
}

/** Where the model's parameters live; undefined for a model without parameters (its batches stay where they are). */
function modelDevice(model: TrainableModel): Device | undefined {
  return model.parameters()[0]?.device;
}

function checkPolicy(name: string, value: unknown): NonFinitePolicy {
  if (value !== 'stop' && value !== 'skip') throw new Error(`fit: ${name} must be 'stop' or 'skip', got '${String(value)}'`);
  return value;
}

/** The training and validation sources, in-memory { x, y } cut into batches here. */
function sources(trainData: BatchSource<unknown> | InMemoryData, options: FitOptions): { train: BatchSource<unknown>; validation?: BatchSource<unknown> } {
  const { batchSize = 32, validationSplit } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`fit: batchSize must be a positive integer, got ${batchSize}`);
  const validation = (data: BatchSource<unknown> | InMemoryData | undefined) =>
    data !== undefined && isInMemoryData(data) ? inMemoryBatches(data, { batchSize, shuffle: false, begin: 0, end: rowCount('fit', data) }) : data;
  if (!isInMemoryData(trainData)) {
    if (trainData === null || typeof trainData !== 'object' || !(Symbol.iterator in trainData || Symbol.asyncIterator in trainData)) {
      throw new Error(`fit: the training data must be batches (a DataLoader, an array or an iterable of batches) or tensors { x, y }, got ${describeValue(trainData)}`);
    }
    for (const key of ['batchSize', 'validationSplit', 'shuffle'] as const) {
      if (options[key] !== undefined) throw new Error(`fit: ${key} applies to in-memory tensors { x, y }; batches from a DataLoader or an iterable come already made (set it on the DataLoader)`);
    }
    return { train: trainData, validation: validation(options.validationData) };
  }
  const n = rowCount('fit', trainData);
  let end = n;
  let heldOut: BatchSource<unknown> | undefined;
  if (validationSplit !== undefined) {
    if (!(validationSplit > 0 && validationSplit < 1)) throw new Error(`fit: validationSplit must be in (0, 1), got ${validationSplit}`);
    if (options.validationData !== undefined) throw new Error('fit: pass validationData or validationSplit, not both');
    end = n - Math.floor(n * validationSplit);
    if (end === n || end === 0) throw new Error(`fit: validationSplit ${validationSplit} of ${n} rows leaves an empty ${end === n ? 'validation' : 'training'} set`);
    heldOut = inMemoryBatches(trainData, { batchSize, shuffle: false, begin: end, end: n });
  }
  const train = inMemoryBatches(trainData, { batchSize, shuffle: options.shuffle ?? true, seed: options.seed, begin: 0, end });
  return { train, validation: heldOut ?? validation(options.validationData) };
}

/** A message naming what went wrong in a step, and how to go on. */
function nonFiniteMessage(what: string, epoch: number, step: number, lr: number, option: string, touched: boolean): string {
  const weights = touched ? 'updates made earlier in this step were each checked' : 'training stopped before this step updated the weights';
  return `fit: ${what} at epoch ${epoch}, step ${step} (lr ${lr}); ${weights}. ` + `Check the data for NaN/Inf and try a lower learning rate, or pass ${option}: 'skip' to drop such batches.`;
}

/**
 * Trains `model`; returns per-epoch logs.
 *
 *   await fit(model, loader, { epochs: 10, loss: crossEntropy, optimizer, metrics: ['accuracy'] });
 *   await fit(model, { x, y }, { epochs: 10, loss, optimizer, batchSize: 64, validationSplit: 0.1 });
 *   await fit(vae, loader, { epochs: 10, optimizer, trainStep: ({ x }) => vae.negativeElbo(x).loss });
 *
 * trainData: a DataLoader, an array of batches (iterable for any number of epochs; the caller
 * keeps its tensors), any (async) iterable of batches, or tensors { x: [n, ...], y: [n, ...] }.
 */
export async function fit(model: TrainableModel, trainData: BatchSource<unknown> | InMemoryData, options: FitOptions): Promise<History> {
  if (!(options.epochs >= 1)) throw new Error(`fit: epochs must be >= 1, got ${options.epochs}`);
  const optimizers = Array.isArray(options.optimizer) ? options.optimizer : [options.optimizer];
  if (optimizers.length === 0 || optimizers.some((o) => typeof o?.step !== 'function')) throw new Error('fit: optimizer must be an optimizer (or an array of them), e.g. new optim.Adam(model.parameters())');
  const optimizer = optimizers[0];
  const manual = options.manualOptimization ?? false;
  if (options.trainStep === undefined && typeof options.loss !== 'function') throw new Error('fit: pass loss (for batches { x, y }) or trainStep (for any other objective)');
  if (manual && options.trainStep === undefined) throw new Error('fit: manualOptimization needs a trainStep that calls ctx.optimizerStep');
  const trainStep = options.trainStep ?? defaultStep('fit', options.loss!);
  const validationStep = options.validationStep ?? (manual ? (options.loss ? defaultStep('fit', options.loss) : undefined) : trainStep);
  const accumulate = options.accumulateSteps ?? 1;
  if (!Number.isInteger(accumulate) || accumulate < 1) throw new Error(`fit: accumulateSteps must be a positive integer, got ${accumulate}`);
  if (manual && accumulate > 1) throw new Error('fit: accumulateSteps applies to automatic optimization; with manualOptimization the trainStep decides when to update');
  const metrics = (options.metrics ?? []).map((m) => resolveMetric('fit', m));
  const callbacks = [...(options.callbacks ?? [])];
  if (options.dashboard) callbacks.push(createDashboard(options.dashboard === true ? {} : options.dashboard));
  const parallel = options.distributed ? dataParallel(model) : null;
  if (parallel && manual) throw new Error('fit: distributed: true averages gradients in the automatic step; with manualOptimization call model.syncGradients() in your trainStep instead');
  const verbose = parallel && !parallel.isLoggingRank ? 0 : (options.verbose ?? 1);
  const onLoss = checkPolicy('onNonFiniteLoss', options.onNonFiniteLoss ?? 'stop');
  const onGradients = checkPolicy('onNonFiniteGradients', options.onNonFiniteGradients ?? onLoss);
  const data = sources(trainData, options);
  if (data.validation !== undefined && validationStep === undefined) throw new Error('fit: validation with manualOptimization needs a validationStep (or a loss for batches { x, y })');
  const device = modelDevice(model);
  const steps = data.train.length;
  const history: History = { epochs: [], details: [], stoppedEarly: false };
  let stopReason: string | undefined;
  const ctx: TrainingContext = { model, optimizer, optimizers, stopTraining: (reason) => (stopReason = reason) };
  const allParams = [...new Set(optimizers.flatMap((o) => o.parameters))];
  const names = new Map(Object.entries(model.stateDict()).map(([name, t]) => [t, name] as [Tensor, string]));
  /** `loss`: the step's loss when known (automatic optimization), else undefined. */
  const badGradients = (bad: readonly Tensor[], epoch: number, step: number, loss?: number) => {
    const which = describeParameters(bad, allParams, names);
    const lead = loss === undefined ? 'the gradients' : `the loss is finite (${loss}) but the gradients`;
    return nonFiniteMessage(
      `${lead} of ${which} hold NaN or ±Infinity (an op with an infinite derivative where it was evaluated, such as sqrt or log at 0?)`,
      epoch, step, optimizer.lr, 'onNonFiniteGradients', false,
    );
  };
  for (const cb of callbacks) await cb.onTrainBegin?.(ctx);
  let globalStep = 0;

  for (let epoch = options.initialEpoch ?? 1; epoch <= options.epochs && stopReason === undefined; epoch++) {
    model.train();
    const bar = verbose ? new ProgressBar(`epoch ${epoch}/${options.epochs}`, steps) : null;
    const epochLogs = new EpochLogs(metrics);
    let step = 0;
    let samples = 0;
    let running = 0;
    let skipped = 0;
    /** Batches whose gradients sit in the current accumulation window. */
    let inWindow = 0;
    const lr = optimizer.lr;
    for (const cb of callbacks) await cb.onEpochBegin?.(epoch, ctx);
    try {
      for await (const { batch, release } of epochBatches(data.train, device)) {
        step++;
        globalStep++;
        for (const cb of callbacks) await cb.onBatchBegin?.(step, { epoch, globalStep, lr: optimizer.lr }, ctx);
        // The window this batch belongs to, and its size (shorter at the end of a known-length epoch).
        const windowStart = Math.floor((step - 1) / accumulate) * accumulate;
        const windowSize = steps === undefined ? accumulate : Math.min(accumulate, steps - windowStart);
        const closesWindow = !manual && (inWindow + 1 >= windowSize || (steps !== undefined && step === steps));
        const extras: Array<[string, number | Tensor]> = [];
        const n = sampleCount(batch);
        let loss = NaN;
        /** Why this step must not update, and the policy that decides what happens then. */
        let failure: { message: string; policy: NonFinitePolicy } | undefined;
        let skippedByStep = false;
        /**
         * The updates `ctx.optimizerStep` made, each kept on the device only if its gradients were
         * finite; their flags are read with the step's loss (no read inside the step).
         */
        const guarded: Array<{ opt: Optimizer; params: Tensor[]; flags: Tensor; stepped: Tensor[] }> = [];
        const stepCtx: StepContext = {
          model, optimizer, optimizers, epoch, batch: step, globalStep, training: true,
          log: (name, value) => void extras.push([name, value]),
          optimizerStep: (opt = optimizer) => {
            if (!manual) throw new Error('fit: ctx.optimizerStep is for manualOptimization; with automatic optimization fit updates after the step');
            const checked = gradientFlags(opt.parameters);
            if (checked === null) return opt.step();
            // Kept past the step's tidy until read (freed with the step's values).
            const entry = { opt, ...checked, flags: keep(checked.flags), stepped: [] as Tensor[] };
            guarded.push(entry);
            entry.stepped = opt.stepIfFinite(checked.flags.sum());
          },
        };
        /** What the step keeps until its values are read: the values to read, and the metrics' inputs. */
        let kept: { values: Tensor; outputs?: Tensor; targets?: Tensor } | undefined;
        /** Whether the values end with the gradient flag (the step closes an accumulation window). */
        let hasFlag = false;
        try {
          kept = tidy(() => {
            if (manual || inWindow === 0) for (const o of optimizers) o.zeroGrad();
            const result = stepResult('fit', trainStep(batch, stepCtx));
            if (!manual) (windowSize > 1 ? result.loss.div(windowSize) : result.loss).backward();
            // Distributed: the gradients are averaged across ranks before they are checked, so a
            // non-finite gradient on any rank trips the guard on every rank alike.
            if (parallel && closesWindow) parallel.syncGradients();
            const flag = closesWindow ? gradientFinitenessFlag(allParams) : null;
            hasFlag = flag !== null;
            // One readback per step: the loss, the logged tensors and the gradient flag together.
            const tensorExtras = extras.filter((e) => isTensor(e[1]));
            const scalars = stack([result.loss.detach(), ...tensorExtras.map(([, t]) => (t as Tensor).detach().reshape([])), ...(flag ? [flag] : [])]);
            const values = guarded.length === 0 ? scalars : concat([scalars, ...guarded.map((g) => g.flags)]);
            if (metrics.length === 0) return { values };
            if (!isTensor(result.outputs) || !isTensor(result.targets)) throw new Error('fit: metrics need the step to return { loss, outputs, targets }');
            return { values, outputs: result.outputs.detach(), targets: result.targets.detach() };
          });
          // Read asynchronously (the one read of the step): on WebGPU in a page there is no
          // synchronous read, and elsewhere `await data()` costs the same as dataSync.
          const values = await kept.values.data();
          // Distributed: every rank must skip (or stop) together, so the guard reads the global loss.
          loss = parallel ? parallel.meanAcrossRanks(values[0]) : values[0];
          extras.filter((e) => isTensor(e[1])).forEach((e, i) => (e[1] = values[i + 1]));
          // The manual updates undone on the device (non-finite gradients): their counters too.
          let at = values.length - guarded.reduce((n, g) => n + g.params.length, 0);
          const spoiled = guarded.flatMap((g) => {
            const flags = values.subarray(at, (at += g.params.length));
            if (!flags.some(Number.isNaN)) return [];
            g.opt.undoStepCount(g.stepped);
            return g.params.filter((_, i) => Number.isNaN(flags[i]));
          });
          if (spoiled.length > 0) skippedByStep = true;
          if (spoiled.length > 0 && onGradients === 'stop') {
            failure = { message: badGradients(spoiled, epoch, step), policy: 'stop' };
          } else if (!Number.isFinite(loss)) {
            failure = { message: nonFiniteMessage(`the loss is ${loss}`, epoch, step, optimizer.lr, 'onNonFiniteLoss', manual), policy: onLoss };
          } else if (hasFlag && Number.isNaN(values[values.length - 1])) {
            failure = { message: badGradients(await nonFiniteGradientsAsync(allParams), epoch, step, loss), policy: onGradients };
          } else {
            const { outputs, targets } = kept;
            tidy(() => {
              if (closesWindow) for (const o of optimizers) o.step();
              if (outputs !== undefined && targets !== undefined) epochLogs.updateMetrics(outputs, targets);
            });
            if (!manual) inWindow = closesWindow ? 0 : inWindow + 1;
          }
        } finally {
          if (kept !== undefined) for (const t of Object.values(kept)) t?.dispose();
          for (const g of guarded) g.flags.dispose();
          release();
        }
        const batchLogs: BatchLogs = { epoch, globalStep, lr: optimizer.lr, loss };
        for (const [name, value] of extras) batchLogs[name] = value as number;
        for (const cb of callbacks) await cb.onBatchEnd?.(step, batchLogs, ctx);
        if (failure !== undefined) {
          if (failure.policy === 'stop') throw new Error(failure.message);
          // The window's gradients are spoiled: the next batch starts a new one.
          inWindow = 0;
          skipped++;
          continue;
        }
        if (skippedByStep) skipped++;
        samples += n;
        epochLogs.addLoss(loss, n);
        for (const [name, value] of extras) epochLogs.addExtra(name, value);
        running = step - skipped === 1 ? loss : 0.98 * running + 0.02 * loss;
        bar?.update(step, samples, running);
        options.onStep?.({ epoch, epochs: options.epochs, step, steps, samples, loss: running });
      }
      if (inWindow > 0) {
        // An epoch of unknown length ended inside a window: its batches still make an update
        // (each of their losses was divided by accumulateSteps, so it is a proportionally smaller one).
        const flag = gradientFinitenessFlag(allParams);
        const finite = flag === null || !Number.isNaN((await flag.data())[0]);
        flag?.dispose();
        if (finite) tidy(() => optimizers.forEach((o) => o.step()));
        else if (onGradients === 'stop') throw new Error(badGradients(await nonFiniteGradientsAsync(allParams), epoch, step));
        else skipped++;
      }
      if (step === 0) throw new Error('fit: the training data produced no batches (is the dataset empty?)');
      if (skipped === step) {
        throw new Error(`fit: every one of the ${step} steps of epoch ${epoch} had a non-finite loss or gradient and was skipped; check the data for NaN/Inf`);
      }
      const read = await epochLogs.read();
      let logs = read.logs;
      const details = read.details;
      if (skipped > 0) logs.skippedSteps = skipped;
      if (data.validation) {
        const val = await evaluateWith(model, data.validation, validationStep!, metrics, 'val', 'fit');
        Object.assign(logs, val.logs);
        Object.assign(details, val.details);
      }
      if (parallel) logs = parallel.meanLogsAcrossRanks(logs);
      logs.lr = lr;
      history.epochs.push({ epoch, ...logs });
      history.details.push(details);
      bar?.finish(formatLogs(logs));
      for (const cb of callbacks) await cb.onEpochEnd?.(epoch, logs, ctx);
    } finally {
      epochLogs.dispose();
    }
  }
  if (stopReason !== undefined) {
    history.stoppedEarly = true;
    history.stopReason = stopReason;
    if (verbose) console.log(stopReason);
  }
  for (const cb of callbacks) await cb.onTrainEnd?.(ctx);
  return history;
}

export interface EvaluateOptions {
  /** The loss of loss(model(x), y); not needed with a step. */
  loss?: LossFn;
  /** A custom step returning the loss (or { loss, outputs, targets } for metrics), run without gradients. */
  step?: TrainStep;
  metrics?: MetricSpec[];
  /** Prefix for the log keys ('val' -> valLoss, valAccuracy). */
  prefix?: string;
}

const evaluatedTestSets = new WeakSet<object>();

/**
 * Marks data as the held-out test set: evaluating it a second time prints a loud warning,
 * because a test set used to make decisions no longer gives an unbiased estimate.
 */
export function testSet<T extends BatchSource<unknown>>(data: T): T & { isTestSet: true } {
  return Object.assign(data, { isTestSet: true as const });
}

/** Mean loss and metrics over `data` (batches or in-memory { x, y }) in eval mode, without recording gradients. */
export async function evaluate(model: TrainableModel, data: BatchSource<unknown> | InMemoryData, options: EvaluateOptions): Promise<Logs> {
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
  if (options.step === undefined && typeof options.loss !== 'function') throw new Error('evaluate: pass loss (for batches { x, y }) or step');
  const step = options.step ?? defaultStep('evaluate', options.loss!);
  const source = isInMemoryData(data) ? inMemoryBatches(data, { batchSize: 32, shuffle: false, begin: 0, end: rowCount('evaluate', data) }) : data;
  const metrics = (options.metrics ?? []).map((m) => resolveMetric('evaluate', m));
  return (await evaluateWith(model, source, step, metrics, options.prefix ?? '', 'evaluate')).logs;
}

async function evaluateWith(model: TrainableModel, data: BatchSource<unknown>, step: TrainStep, metrics: Metric[], prefix: string, op: string): Promise<{ logs: Logs; details: Record<string, unknown> }> {
  model.eval();
  const epochLogs = new EpochLogs(metrics);
  const device = modelDevice(model);
  const optimizers: Optimizer[] = [];
  let batchIndex = 0;
  try {
    for await (const { batch, release } of epochBatches(data, device)) {
      batchIndex++;
      try {
        noGrad(() =>
          tidy(() => {
            const ctx: StepContext = {
              model, optimizer: optimizers[0], optimizers, epoch: 0, batch: batchIndex, globalStep: 0, training: false,
              log: (name, value) => epochLogs.addExtra(name, value),
              optimizerStep: () => {
                throw new Error(`${op}: ctx.optimizerStep was called while evaluating (ctx.training is false)`);
              },
            };
            const result = stepResult(op, step(batch, ctx));
            epochLogs.addLossTensor(result.loss, sampleCount(batch));
            if (metrics.length > 0) {
              if (!isTensor(result.outputs) || !isTensor(result.targets)) throw new Error(`${op}: metrics need the step to return { loss, outputs, targets }`);
              epochLogs.updateMetrics(result.outputs, result.targets);
            }
          }),
        );
      } finally {
        release();
      }
    }
    return await epochLogs.read(prefix);
  } finally {
    epochLogs.dispose();
  }
}

/**
 * Model outputs for every batch of `data` (or for one tensor), concatenated along axis 0. Batches
 * are { x, y? } or [x, y] with x a tensor, an array of inputs (forward(...x)) or an object.
 */
export async function predict(model: TrainableModel, data: Tensor | BatchSource<unknown>): Promise<Tensor> {
  model.eval();
  // tidy frees the layers' intermediates; only the output survives.
  const forward = (x: Tensor | Tensor[] | Record<string, Tensor>): Tensor => noGrad(() => tidy(() => callModel(model, x) as Tensor));
  const device = modelDevice(model);
  if (isTensor(data)) {
    // A tensor on the CPU for a model on the GPU is moved for the call (the caller keeps theirs).
    if (device === undefined || data.device === device) return forward(data);
    const onDevice = data.to(device);
    try {
      return forward(onDevice);
    } finally {
      onDevice.dispose();
    }
  }
  const outs: Tensor[] = [];
  for await (const { batch, release } of epochBatches(data, device)) {
    try {
      outs.push(forward(splitBatch('predict', batch).x));
    } finally {
      release();
    }
  }
  const all = concat(outs, 0);
  for (const o of outs) o.dispose();
  return all;
}
