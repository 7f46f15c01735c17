/**
 * The live view for training inside a web page: the same charts as Node's Dashboard, drawn
 * directly into an element of the page (no server).
 *
 *   await kiln.fit(model, data, { ..., callbacks: [new kiln.train.PageDashboard({ element: div })] });
 *   await kiln.fit(model, data, { ..., dashboard: true });   // appends the view to document.body
 */

import type { BatchLogs, TrainingContext } from '../callbacks.js';
import type { Logs } from '../types.js';
import { DashboardCallback, type DashboardOptions } from './callback.js';
import type { DashboardEvent } from './events.js';
import { mountDashboard, type DashboardView } from './view.js';

/** Options of {@link PageDashboard}: the shared dashboard options plus the page element it draws into. */
export interface PageDashboardOptions extends DashboardOptions {
  /** Where the view goes (default: a new div at the end of document.body). */
  element?: HTMLElement;
}

/**
 * A training callback that draws the live dashboard (loss per batch and epoch, metrics, learning
 * rate, samples) into an element of the current web page, with no server. Because training runs
 * on the page's thread, it waits for an animation frame (at most every 100 ms of batches, and at
 * each epoch end) so the charts actually repaint.
 */
export class PageDashboard extends DashboardCallback {
  /** The mounted view (charts and samples). */
  readonly view: DashboardView;

  /** Mounts the view into `options.element` (or a new div appended to document.body) right away. */
  constructor(options: PageDashboardOptions = {}) {
    super(options);
    let element = options.element;
    if (!element) {
      element = document.createElement('div');
      document.body.appendChild(element);
    }
    this.view = mountDashboard(element, { title: options.title });
  }

  private lastPaint = 0;

  protected publish(event: DashboardEvent): void {
    this.view.handle(event);
  }

  /** Also lets the page paint (at most every 100 ms), as a loop awaiting its callbacks allows. */
  override onBatchEnd(batch: number, logs: BatchLogs, ctx?: TrainingContext): Promise<void> | void {
    super.onBatchEnd(batch, logs, ctx);
    if (performance.now() - this.lastPaint >= 100) return this.nextFrame();
  }

  /** Lets the page paint the epoch's charts before the next epoch starts. */
  override onEpochEnd(epoch: number, logs: Logs, ctx: TrainingContext): Promise<void> {
    super.onEpochEnd(epoch, logs, ctx);
    return this.nextFrame();
  }

  /**
   * Training in a page runs on the page's own thread, which paints only when the loop yields:
   * resolving on the next animation frame gives the charts (drawn in animation frames) their turn.
   */
  private nextFrame(): Promise<void> {
    this.lastPaint = performance.now();
    return new Promise((resolve) => requestAnimationFrame(() => resolve()));
  }
}
