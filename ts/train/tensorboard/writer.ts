/**
 * SummaryWriter: appends TensorBoard events (scalars, histograms, PNG images) to one event file
 * in a log directory, as `torch.utils.tensorboard.SummaryWriter` does. Writes are synchronous
 * appends, so a crashed run keeps every event written before the crash.
 */

import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { encodePng, type Image } from '../../viz/png.js';
import { histogram } from './histogram.js';
import { encodeFileVersionEvent, encodeSummaryEvent, type SummaryValue } from './proto.js';
import { tfRecord } from './tfrecord.js';

let filesOpened = 0;

/**
 * Writes TensorBoard events (scalars, histograms, PNG images) to a new event file in a log
 * directory, like PyTorch's `torch.utils.tensorboard.SummaryWriter` (Node only). Each write is a
 * synchronous append, so a run that crashes keeps everything written before the crash.
 */
export class SummaryWriter {
  /** The event file being written (`<logDir>/events.out.tfevents.<seconds>.<host>.<pid>.<n>`). */
  readonly file: string;
  private fd: number | null;

  /** Creates `logDir` if needed and opens a new, uniquely named event file in it. */
  constructor(readonly logDir: string) {
    mkdirSync(logDir, { recursive: true });
    // TensorBoard finds event files by the "tfevents" in their name and orders them by it.
    this.file = join(logDir, `events.out.tfevents.${Math.floor(Date.now() / 1000)}.${hostname()}.${process.pid}.${filesOpened++}`);
    this.fd = openSync(this.file, 'a');
    this.write(encodeFileVersionEvent(Date.now() / 1000));
  }

  /** One scalar at `step` (a point on a TensorBoard scalar chart). */
  addScalar(tag: string, value: number, step: number): void {
    this.addValues(step, [{ tag, simple_value: value }]);
  }

  /** Several scalars at one step, in one event. */
  addScalars(values: Record<string, number>, step: number): void {
    this.addValues(step, Object.entries(values).map(([tag, v]) => ({ tag, simple_value: v })));
  }

  /** The histogram of `values` (e.g. a weight tensor's data) in `bins` equal-width buckets. */
  addHistogram(tag: string, values: ArrayLike<number>, step: number, bins = 30): void {
    this.addValues(step, [{ tag, histo: histogram(values, bins) }]);
  }

  /** An image (grey, RGB or RGBA bytes; `kiln.viz.imageGrid` makes one from a batch of samples), stored as PNG. */
  addImage(tag: string, image: Image, step: number): void {
    const png = encodePng(image, (raw) => deflateSync(raw));
    this.addValues(step, [{ tag, image: { height: image.height, width: image.width, colorspace: image.channels, encoded_image_string: png } }]);
  }

  /** Closes the file; later writes are an error. */
  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private addValues(step: number, values: SummaryValue[]): void {
    if (!Number.isInteger(step) || step < 0) throw new Error(`SummaryWriter: step must be a non-negative integer, got ${step}`);
    this.write(encodeSummaryEvent(step, Date.now() / 1000, values));
  }

  private write(event: Uint8Array): void {
    if (this.fd === null) throw new Error(`SummaryWriter: ${this.file} is closed`);
    writeSync(this.fd, tfRecord(event));
  }
}
