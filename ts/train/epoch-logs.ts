/**
 * What one epoch (or one evaluation) adds up: the sample-weighted mean loss, the batch-mean of
 * the scalars a custom step logs, and the metrics; read once at the end as flat logs.
 */

import type { Tensor } from '../tensor.js';
import { mul } from '../ops/elementwise.js';
import { detach } from '../autograd.js';
import { RunningSum, type Metric } from './metrics/index.js';
import type { Logs } from './types.js';

/** 'accuracy' -> 'valAccuracy' for prefix 'val'; unchanged without a prefix. */
export function prefixed(prefix: string, name: string): string {
  return prefix ? `${prefix}${name[0].toUpperCase()}${name.slice(1)}` : name;
}

export class EpochLogs {
  private lossTotal = 0;
  private readonly lossOnDevice = new RunningSum();
  private samples = 0;
  private readonly extras = new Map<string, { total: number; onDevice: RunningSum; count: number }>();

  /** The metrics are reset here: one instance serves training, then validation, epoch after epoch. */
  constructor(private readonly metrics: readonly Metric[]) {
    for (const m of metrics) m.reset();
  }

  /** A batch's mean loss, already read back (training reads it anyway, for the guard). */
  addLoss(value: number, samples: number): void {
    this.lossTotal += value * samples;
    this.samples += samples;
  }

  /** A batch's mean loss as a tensor [], summed on the device (evaluation reads nothing per batch). */
  addLossTensor(loss: Tensor, samples: number): void {
    this.lossOnDevice.add(() => mul(detach(loss), samples));
    this.samples += samples;
  }

  /** A scalar a custom step logged with ctx.log: its epoch value is the mean over the batches that logged it. */
  addExtra(name: string, value: number | Tensor): void {
    let e = this.extras.get(name);
    if (e === undefined) this.extras.set(name, (e = { total: 0, onDevice: new RunningSum(), count: 0 }));
    e.count++;
    if (typeof value === 'number') e.total += value;
    else e.onDevice.add(() => detach(value));
  }

  updateMetrics(outputs: Tensor, targets: Tensor): void {
    for (const m of this.metrics) m.update(outputs, targets);
  }

  /**
   * The epoch's logs (loss, extras, metrics; names prefixed) and the metrics' non-scalar details.
   * Every device sum is read with `await t.data()` (all at once), never with a synchronous read:
   * on WebGPU in a page that is the only read there is.
   */
  async read(prefix = ''): Promise<{ logs: Logs; details: Record<string, unknown> }> {
    const logs: Logs = {};
    const details: Record<string, unknown> = {};
    if (this.samples === 0) return { logs, details };
    await Promise.all([this.lossOnDevice.fetch(), ...[...this.extras.values()].map((e) => e.onDevice.fetch()), ...this.metrics.map((m) => m.ready?.())]);
    logs[prefixed(prefix, 'loss')] = (this.lossTotal + (this.lossOnDevice.read()?.[0] ?? 0)) / this.samples;
    for (const [name, e] of this.extras) logs[prefixed(prefix, name)] = (e.total + (e.onDevice.read()?.[0] ?? 0)) / e.count;
    for (const m of this.metrics) {
      const value = m.compute();
      if (typeof value === 'number') logs[prefixed(prefix, m.name)] = value;
      else for (const [k, v] of Object.entries(value)) logs[prefixed(prefix, k)] = v;
      if (m.details) details[prefixed(prefix, m.name)] = m.details();
    }
    return { logs, details };
  }

  /** Frees what is held on the device (the metrics included). */
  dispose(): void {
    this.lossOnDevice.reset();
    for (const e of this.extras.values()) e.onDevice.reset();
    for (const m of this.metrics) m.reset();
  }
}
