/**
 * How `fit(..., { dashboard: true })` finds its dashboard without importing a server into the
 * browser bundle: the Node entry registers the HTTP-serving Dashboard, the browser entry the
 * in-page one.
 */

import type { Callback } from '../callbacks.js';
import type { DashboardOptions } from './callback.js';

let factory: ((options: DashboardOptions) => Callback) | null = null;

/** Called once by an entry point (index.ts, browser.ts). */
export function registerDashboard(create: (options: DashboardOptions) => Callback): void {
  factory = create;
}

/** The dashboard callback `fit` adds for its `dashboard` option. */
export function createDashboard(options: DashboardOptions): Callback {
  if (factory === null) throw new Error('fit: the dashboard option needs the Node entry (kiln) or the browser entry (kiln/browser); neither registered a dashboard');
  return factory(options);
}
