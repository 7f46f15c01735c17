/**
 * What a training run tells its live view: the messages the Dashboard callback sends (over
 * Server-Sent Events from Node, or directly in a page) and the view draws.
 */

export type DashboardEvent =
  /** A fit began; `title` heads the page. */
  | { type: 'begin'; title: string; epochs?: number }
  /** One training step: `step` counts from 1 across epochs; logs hold loss, lr and batch metrics. */
  | { type: 'batch'; step: number; epoch: number; logs: Record<string, number> }
  /** One epoch's logs (loss, metrics, valLoss, ..., lr). */
  | { type: 'epoch'; epoch: number; logs: Record<string, number> }
  /** Generated samples as a PNG data URL. */
  | { type: 'samples'; epoch: number; png: string }
  /** The fit ended (normally or by early stopping). */
  | { type: 'end'; reason?: string };
