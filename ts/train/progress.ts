/**
 * The terminal progress bar of `fit`: one line redrawn in place on a TTY (rate, ETA, running
 * loss), and only the per-epoch summary lines when output is a file or CI log. In a browser
 * (no `process.stdout`) the summary lines go to the console; pages show live progress with
 * fit's `onStep` callback instead.
 */

/** Where the bar writes: a Node stream (process.stdout) or anything with the same two members. */
export interface ProgressOutput {
  write(text: string): unknown;
  isTTY?: boolean;
}

/** process.stdout in Node; null where there is no `process` (browsers, workers). */
function nodeStdout(): { out: ProgressOutput | null; ci: boolean } {
  const proc = (globalThis as { process?: { stdout?: ProgressOutput; env?: Record<string, string | undefined> } }).process;
  return { out: proc?.stdout ?? null, ci: proc?.env?.CI !== undefined };
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 60) return `${seconds.toFixed(0)}s`;
  return `${Math.floor(seconds / 60)}m${String(Math.round(seconds % 60)).padStart(2, '0')}s`;
}

export function formatLogs(logs: Record<string, number>): string {
  return Object.entries(logs)
    .map(([k, v]) => `${k} ${k === 'lr' ? v.toExponential(1) : Math.abs(v) >= 1000 ? v.toFixed(0) : v.toFixed(4)}`)
    .join('  ');
}

export class ProgressBar {
  private readonly start = performance.now();
  private lastDraw = 0;
  private readonly tty: boolean;
  private readonly out: ProgressOutput | null;

  /** `out`: default process.stdout; null writes the epoch lines with console.log. */
  constructor(private readonly label: string, private readonly total: number | undefined, out?: ProgressOutput | null) {
    const node = nodeStdout();
    this.out = out === undefined ? node.out : out;
    this.tty = Boolean(this.out?.isTTY) && !node.ci;
  }

  /** Redraws at most ~10 times a second. */
  update(done: number, samples: number, runningLoss: number): void {
    if (!this.tty) return;
    const now = performance.now();
    if (now - this.lastDraw < 100 && done !== this.total) return;
    this.lastDraw = now;
    const elapsed = (now - this.start) / 1000;
    const rate = samples / Math.max(elapsed, 1e-9);
    const width = 24;
    let bar = '';
    let eta = '';
    if (this.total) {
      const filled = Math.min(width, Math.round((done / this.total) * width));
      bar = `[${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? '>' : ''}${'.'.repeat(width - filled)}] ${done}/${this.total} `;
      eta = ` ETA ${formatDuration(((this.total - done) * elapsed) / Math.max(done, 1))}`;
    }
    this.out?.write(`\r${this.label} ${bar}${Math.round(rate).toLocaleString('en-US')} samples/s${eta}  loss ${runningLoss.toFixed(4)}\x1b[K`);
  }

  /** Replaces the bar with the epoch's summary line. */
  finish(summary: string): void {
    const seconds = ((performance.now() - this.start) / 1000).toFixed(1);
    const line = `${this.label}  ${summary}  (${seconds}s)`;
    if (this.out === null) console.log(line);
    else this.out.write(`${this.tty ? '\r\x1b[K' : ''}${line}\n`);
  }
}
