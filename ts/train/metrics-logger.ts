/** The MetricsLogger callback: epoch logs appended to a CSV or JSONL file (Node only). */

import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Callback } from './callbacks.js';
import type { Logs } from './types.js';

/**
 * Appends each epoch's logs to a CSV or JSONL file (format from the extension). The file starts
 * empty at train begin unless `append` is set (a resumed run continues its log).
 */
export class MetricsLogger implements Callback {
  private columns: string[] | null = null;
  constructor(private readonly path: string, private readonly options: { append?: boolean } = {}) {}

  /** Creates the file (empty, or continued when `append` is set). */
  onTrainBegin(): void {
    mkdirSync(dirname(this.path), { recursive: true });
    const existing = this.options.append && existsSync(this.path) ? readFileSync(this.path, 'utf8') : '';
    if (existing === '') writeFileSync(this.path, '');
    // A CSV being continued keeps its header.
    this.columns = existing && !this.path.endsWith('.jsonl') ? existing.split('\n')[0].split(',') : null;
  }

  /**
   * Appends one row: `epoch` and the epoch's logs. A CSV's columns are fixed by its first row
   * (or the header of a continued file), so keys that appear later are not written.
   */
  onEpochEnd(epoch: number, logs: Logs): void {
    const row: Record<string, number> = { epoch, ...logs };
    if (this.path.endsWith('.jsonl')) {
      appendFileSync(this.path, `${JSON.stringify(row)}\n`);
      return;
    }
    if (this.columns === null) {
      this.columns = Object.keys(row);
      appendFileSync(this.path, `${this.columns.join(',')}\n`);
    }
    appendFileSync(this.path, `${this.columns.map((c) => row[c] ?? '').join(',')}\n`);
  }
}
