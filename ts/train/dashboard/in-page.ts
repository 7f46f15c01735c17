/**
 * The live view for training inside a web page: the same charts as Node's Dashboard, drawn
 * directly into an element of the page (no server).
 *
 *   await kiln.fit(model, data, { ..., callbacks: [new kiln.train.PageDashboard({ element: div })] });
 *   await kiln.fit(model, data, { ..., dashboard: true });   // appends the view to document.body
 */

import { DashboardCallback, type DashboardOptions } from './callback.js';
import type { DashboardEvent } from './events.js';
import { mountDashboard, type DashboardView } from './view.js';

export interface PageDashboardOptions extends DashboardOptions {
  /** Where the view goes (default: a new div at the end of document.body). */
  element?: HTMLElement;
}

export class PageDashboard extends DashboardCallback {
  /** The mounted view (charts and samples). */
  readonly view: DashboardView;

  constructor(options: PageDashboardOptions = {}) {
    super(options);
    let element = options.element;
    if (!element) {
      element = document.createElement('div');
      document.body.appendChild(element);
    }
    this.view = mountDashboard(element, { title: options.title });
  }

  protected publish(event: DashboardEvent): void {
    this.view.handle(event);
  }
}
