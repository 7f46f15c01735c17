/// <reference lib="dom" />
/**
 * The live training view: uPlot charts of the per-batch losses, the per-epoch losses and metrics
 * and the learning rate, plus the latest generated samples. It only draws DashboardEvents, so the
 * same component serves the page that Node's Dashboard serves and a page that trains in-browser.
 *
 *   const view = mountDashboard(document.querySelector('#training'));
 *   view.handle({ type: 'batch', step: 1, epoch: 1, logs: { loss: 2.3, lr: 1e-3 } });
 *
 * Include uPlot's stylesheet (uplot/dist/uPlot.min.css) for its legend layout.
 */

import uPlot from 'uplot';
import type { DashboardEvent } from './events.js';

const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

/** Axis labels: exponents for log scales and small values (learning rates), else up to 4 digits. */
function formatTick(v: number | null, log: boolean): string {
  if (v === null || !Number.isFinite(v)) return '';
  if (v !== 0 && (log || Math.abs(v) < 1e-2)) return v.toExponential(1);
  return String(+v.toPrecision(4));
}

/** Logs as text for the status line (the learning rate in exponent form). */
function describeLogs(logs: Record<string, number>): string {
  return Object.entries(logs).map(([k, v]) => `${k} ${k === 'lr' ? v.toExponential(2) : v.toPrecision(4)}`).join(', ');
}

/** One chart whose series appear as their keys first arrive; redraws at most once per frame. */
class LiveChart {
  readonly x: number[] = [];
  readonly series = new Map<string, (number | null)[]>();
  private plot: uPlot | null = null;
  private pending = false;
  private readonly box: HTMLDivElement;

  constructor(parent: HTMLElement, private readonly title: string, private readonly xLabel: string, private readonly log = false) {
    this.box = document.createElement('div');
    this.box.className = 'kiln-dash-chart';
    parent.appendChild(this.box);
  }

  /** Adds the point (x, values); keys not seen before become new series (earlier points null). */
  push(x: number, values: Record<string, number>): void {
    this.x.push(x);
    for (const key of Object.keys(values)) {
      if (!this.series.has(key)) {
        this.series.set(key, new Array(this.x.length - 1).fill(null));
        if (this.plot) this.plot.addSeries(this.seriesOptions(key, this.series.size - 1));
      }
    }
    for (const [key, column] of this.series) column.push(Number.isFinite(values[key]) ? values[key]! : null);
    this.schedule();
  }

  /** The plotted data: [x, ...series] as uPlot holds it (what the tests read). */
  data(): { x: number[]; series: Record<string, (number | null)[]> } {
    return { x: [...this.x], series: Object.fromEntries([...this.series].map(([k, v]) => [k, [...v]])) };
  }

  private seriesOptions(key: string, index: number): uPlot.Series {
    return { label: key, stroke: COLORS[index % COLORS.length], width: 2, spanGaps: true, points: { show: this.x.length < 60 } };
  }

  private schedule(): void {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  private draw(): void {
    const data = [this.x, ...this.series.values()] as uPlot.AlignedData;
    if (this.plot) {
      this.plot.setData(data);
      return;
    }
    const width = Math.max(320, Math.min(560, this.box.parentElement?.clientWidth ?? 560));
    this.plot = new uPlot(
      {
        title: this.title,
        width,
        height: 260,
        scales: { x: { time: false }, y: this.log ? { distr: 3 } : {} },
        // A wide label gutter: learning rates like 1.0e-4 must not be clipped.
        // x counts steps or epochs: whole-number ticks only
        axes: [{ label: this.xLabel, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000] }, { size: 70, values: (_u, ticks) => ticks.map((v) => formatTick(v, this.log)) }],
        series: [{ label: this.xLabel }, ...[...this.series.keys()].map((k, i) => this.seriesOptions(k, i))],
      },
      data,
      this.box,
    );
  }
}

/** A mounted live view. */
export interface DashboardView {
  /** Draws one event from the run. */
  handle(event: DashboardEvent): void;
  /** The data of each chart (batch, epochLoss, epochMetrics, lr), for tests and tools. */
  chartData(): Record<string, ReturnType<LiveChart['data']>>;
  /** Number of events drawn so far. */
  readonly events: number;
}

const STYLE = `
.kiln-dash{font-family:sans-serif;color:#222}
.kiln-dash h2{margin:8px 0;font-size:18px}
.kiln-dash .kiln-dash-status{color:#555;margin-bottom:8px}
.kiln-dash .kiln-dash-grid{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
.kiln-dash .kiln-dash-chart{background:#fff}
.kiln-dash .kiln-dash-samples img{image-rendering:pixelated;width:280px;border:1px solid #ddd}
`;

/**
 * Builds the live view inside `container` (a div the page owns) and returns it; feed it the
 * events of a run with `handle`.
 */
export function mountDashboard(container: HTMLElement, options: { title?: string } = {}): DashboardView {
  if (!document.getElementById('kiln-dash-style')) {
    const style = document.createElement('style');
    style.id = 'kiln-dash-style';
    style.textContent = STYLE;
    document.head.appendChild(style);
  }
  const root = document.createElement('div');
  root.className = 'kiln-dash';
  const heading = document.createElement('h2');
  heading.textContent = options.title ?? 'Training';
  const status = document.createElement('div');
  status.className = 'kiln-dash-status';
  status.textContent = 'waiting for the first step…';
  const grid = document.createElement('div');
  grid.className = 'kiln-dash-grid';
  root.append(heading, status, grid);
  container.appendChild(root);

  const charts = {
    batch: new LiveChart(grid, 'Loss per batch', 'step'),
    epochLoss: new LiveChart(grid, 'Loss per epoch', 'epoch'),
    epochMetrics: new LiveChart(grid, 'Metrics per epoch', 'epoch'),
    lr: new LiveChart(grid, 'Learning rate', 'step', true),
  };
  const samples = document.createElement('div');
  samples.className = 'kiln-dash-samples';
  grid.appendChild(samples);
  let count = 0;
  let epochs: number | undefined;
  let lrPerBatch = false;

  const handle = (event: DashboardEvent): void => {
    count++;
    switch (event.type) {
      case 'begin':
        heading.textContent = event.title;
        epochs = event.epochs;
        break;
      case 'batch': {
        const { lr, ...rest } = event.logs;
        charts.batch.push(event.step, rest);
        if (lr !== undefined) {
          lrPerBatch = true;
          charts.lr.push(event.step, { lr });
        }
        status.textContent = `epoch ${event.epoch}${epochs ? `/${epochs}` : ''}, step ${event.step}: ${describeLogs(event.logs)}`;
        break;
      }
      case 'epoch': {
        const { lr, ...rest } = event.logs;
        const isLoss = (k: string) => k.toLowerCase().endsWith('loss');
        charts.epochLoss.push(event.epoch, Object.fromEntries(Object.entries(rest).filter(([k]) => isLoss(k))));
        const metrics = Object.entries(rest).filter(([k]) => !isLoss(k) && k !== 'epoch');
        if (metrics.length > 0) charts.epochMetrics.push(event.epoch, Object.fromEntries(metrics));
        // Without per-batch reports the learning rate is charted per epoch.
        if (lr !== undefined && !lrPerBatch) charts.lr.push(event.epoch, { lr });
        status.textContent = `epoch ${event.epoch}${epochs ? `/${epochs}` : ''} done: ${describeLogs(event.logs)}`;
        break;
      }
      case 'samples': {
        samples.innerHTML = '';
        const caption = document.createElement('div');
        caption.textContent = `samples, epoch ${event.epoch}`;
        const img = document.createElement('img');
        img.src = event.png;
        img.alt = caption.textContent;
        samples.append(caption, img);
        break;
      }
      case 'end':
        status.textContent = `finished${event.reason ? ` (${event.reason})` : ''}; ${status.textContent}`;
        break;
    }
  };
  return {
    handle,
    chartData: () => Object.fromEntries(Object.entries(charts).map(([k, c]) => [k, c.data()])),
    get events() {
      return count;
    },
  };
}
