/**
 * The callback half of the live view, shared by Node's Dashboard (which serves a page) and the
 * in-page dashboard: it turns the loop's hooks into DashboardEvents and hands them to `publish`.
 */

import { encodePng, type ZlibCompress } from '../../viz/png.js';
import type { GridOptions } from '../../viz/grid.js';
import { BATCH_COUNTERS, type BatchLogs, type Callback, type TrainingContext } from '../callbacks.js';
import { drawSamples, type SampleFn } from '../samples.js';
import type { Logs } from '../types.js';
import type { DashboardEvent } from './events.js';

/** What the live dashboard shows, shared by Node's served Dashboard and the in-page PageDashboard. */
export interface DashboardOptions {
  /** Heading of the page (default 'Kiln training'). */
  title?: string;
  /** Generated samples shown at each epoch's end (a generator's output, reconstructions). */
  samples?: SampleFn;
  /** How the samples are laid out (columns, scale, ...; default scale 2). */
  sampleGrid?: GridOptions;
}

/** Base64 of bytes, in Node and in browsers. */
function base64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

export abstract class DashboardCallback implements Callback {
  private step = 0;
  private epoch = 1;

  constructor(protected readonly options: DashboardOptions, private readonly compress?: ZlibCompress) {}

  /** Delivers one event to the view. */
  protected abstract publish(event: DashboardEvent): void;

  /** Resets the step and epoch counters and tells the view a new run (with its title) has begun. */
  onTrainBegin(_ctx?: TrainingContext): void | Promise<void> {
    this.step = 0;
    this.epoch = 1;
    this.publish({ type: 'begin', title: this.options.title ?? 'Kiln training' });
  }

  /** One step's logs (loss, batch metrics); the lr is added from the optimizer when ctx is given. */
  onBatchEnd(_batch: number, logs: BatchLogs, ctx?: TrainingContext): void {
    this.step = logs.globalStep ?? this.step + 1;
    const values: Record<string, number> = {};
    for (const [k, v] of Object.entries(logs)) if (typeof v === 'number' && !BATCH_COUNTERS.has(k)) values[k] = v;
    if (ctx && values.lr === undefined) values.lr = ctx.optimizer.lr;
    this.publish({ type: 'batch', step: this.step, epoch: this.epoch, logs: values });
  }

  /**
   * Sends the epoch's logs (loss, validation and metric values) to the epoch charts and, when
   * `samples` is set, renders that epoch's samples to a PNG grid for the view.
   */
  onEpochEnd(epoch: number, logs: Logs, ctx: TrainingContext): void {
    this.epoch = epoch + 1;
    this.publish({ type: 'epoch', epoch, logs: { ...logs } });
    if (this.options.samples) {
      const image = drawSamples(this.options.samples, epoch, ctx, { scale: 2, ...this.options.sampleGrid });
      this.publish({ type: 'samples', epoch, png: `data:image/png;base64,${base64(encodePng(image, this.compress))}` });
    }
  }

  /** Tells the view the run is over. */
  onTrainEnd(_ctx?: TrainingContext): void | Promise<void> {
    this.publish({ type: 'end' });
  }
}
