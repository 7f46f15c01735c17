/**
 * Training pages in Chromium (playwright-core with Debian's chromium).
 *
 * The static learning-curve page (train.learningCurvesHtml): every axis label lies inside its
 * chart, measured from the rendered text boxes, also for learning rates down to 1e-5 (whose
 * labels were once cut off at the left edge).
 *
 * The live training view:
 * - `fit(..., { dashboard: true })` prints a 127.0.0.1 URL; the page, opened while the fit runs,
 *   shows the epoch losses, metrics and learning rate, and shows more of them when read again
 *   later in the same run; the values are the fit's own logs; the server is gone when fit ends;
 * - a Dashboard fed per batch by fit's onBatchEnd
 *   charts every step's loss and lr, shows the generated samples, and with keepOpen keeps serving
 *   after fit until close().
 * - in a page, with the browser bundle (dist-web/kiln.js), `fit(..., { dashboard: true })` appends
 *   the same view to the page and it updates during the in-page run.
 * The run pauses in a callback (which fit awaits) while the page is read, so "during the run" is
 * certain rather than a race.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as kiln from '../../ts/index.js';
import { optim, train } from '../../ts/index.js';
import type { Callback } from '../../ts/train/index.js';
import { TinyMlp, batches, xorData } from '../train/fixtures.js';
import { buildWeb, launchChromium, ROOT, skipBrowser } from './chromium.js';

interface ChartData { x: number[]; series: Record<string, (number | null)[]> }
type Charts = Record<'batch' | 'epochLoss' | 'epochMetrics' | 'lr', ChartData>;

/** Runs `read` at the end of the listed epochs, while fit waits for it. */
class PauseAt implements Callback {
  constructor(private readonly epochs: number[], private readonly read: (epoch: number) => Promise<void>) {}
  async onEpochEnd(epoch: number): Promise<void> {
    if (this.epochs.includes(epoch)) await this.read(epoch);
  }
}

describe.skipIf(skipBrowser)('training pages in chromium', () => {
  let browser: any;

  beforeAll(async () => {
    // The page loads the compiled view from dist/: compile when it is older than its source.
    const built = join(ROOT, 'dist', 'train', 'dashboard', 'view.js');
    if (!existsSync(built) || statSync(built).mtimeMs < statSync(join(ROOT, 'ts', 'train', 'dashboard', 'view.ts')).mtimeMs) {
      const r = spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: ROOT, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`tsc failed:\n${r.stdout}${r.stderr}`);
    }
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
  });

  /** Opens the page and waits until it has drawn `events` events. */
  async function open(url: string): Promise<{ page: any; errors: string[] }> {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e: Error) => errors.push(e.message));
    await page.goto(url);
    return { page, errors };
  }

  const chartsOf = (page: any): Promise<Charts> => page.evaluate(() => (window as any).kilnDashboard.chartData());
  const waitForEvents = (page: any, n: number) => page.waitForFunction((k: number) => (window as any).kilnDashboard?.events >= k, n, { timeout: 20_000 });

  it('fit({ dashboard: true }) prints its URL and the page updates while training runs', async () => {
    const printed: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void printed.push(a.join(' ')));
    const model = new TinyMlp(2, 8, 2, 9);
    const opt = new optim.Adam(model.parameters(), { lr: 0.02 });
    const schedule = new optim.StepDecay(opt, 2, 0.5);
    let page: any;
    let errors: string[] = [];
    const seen: Record<number, Charts> = {};
    let url = '';
    // fit adds the dashboard after the given callbacks, so when this pauses at epoch e's end
    // the page has the logs of epochs 1 .. e - 1
    const reader = new PauseAt([3, 5], async (epoch) => {
      if (!page) {
        url = printed.map((l) => /Dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(l)?.[1]).find(Boolean) ?? '';
        expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
        ({ page, errors } = await open(url));
      }
      await waitForEvents(page, epoch);
      seen[epoch - 1] = await chartsOf(page);
    });
    try {
      const history = await kiln.fit(model, batches(xorData(64, 1), 16), {
        epochs: 5,
        loss: (out, y) => kiln.crossEntropy(out, y),
        optimizer: opt,
        metrics: ['accuracy'],
        validationData: batches(xorData(32, 2), 16),
        callbacks: [new train.LRScheduler(schedule), reader],
        dashboard: true,
        verbose: 0,
      });
      // read twice during the run: 2 epochs, then 4, each equal to the fit's own logs
      for (const [epoch, charts] of Object.entries(seen).map(([e, c]) => [Number(e), c] as const)) {
        const logs = history.epochs.slice(0, epoch);
        expect(charts.epochLoss.x).toEqual(logs.map((e) => e.epoch));
        expect(charts.epochLoss.series.loss).toEqual(logs.map((e) => e.loss));
        expect(charts.epochLoss.series.valLoss).toEqual(logs.map((e) => e.valLoss));
        expect(charts.epochMetrics.series.accuracy).toEqual(logs.map((e) => e.accuracy));
        expect(charts.epochMetrics.series.valAccuracy).toEqual(logs.map((e) => e.valAccuracy));
        // the lr chart is per batch (4 a epoch), and the reader runs during the next epoch's end,
        // after that epoch's batches reached the page
        expect(charts.lr.series.lr).toEqual(history.epochs.slice(0, epoch + 1).flatMap((e) => [e.lr, e.lr, e.lr, e.lr]));
      }
      expect(seen[2]!.epochLoss.x).toEqual([1, 2]);
      expect(seen[4]!.epochLoss.x).toEqual([1, 2, 3, 4]);
      // the charts were drawn (uPlot made its canvases)
      expect(await page.locator('.kiln-dash-chart canvas').count()).toBeGreaterThanOrEqual(3);
      expect(errors).toEqual([]);
      // the server stopped with fit
      await expect(fetch(url)).rejects.toThrow();
    } finally {
      log.mockRestore();
      await page?.close();
      opt.dispose();
      model.dispose();
    }
  }, 60_000);

  it('a Dashboard fed per batch charts every step’s loss and lr, shows samples, and stays open with keepOpen', async () => {
    const model = new TinyMlp(2, 8, 2, 11);
    const opt = new optim.SGD(model.parameters(), { lr: 0.1 });
    const schedule = new optim.StepDecay(opt, 1, 0.5);
    const steps: { loss: number; lr: number }[] = [];
    const dashboard = new train.Dashboard({
      title: 'XOR, per batch',
      keepOpen: true,
      printUrl: false,
      samples: (epoch) => kiln.full([4, 6, 6], epoch / 4),
    });
    let page: any;
    let errors: string[] = [];
    const seen: Charts[] = [];
    const reader = new PauseAt([1, 3], async (epoch) => {
      if (!page) ({ page, errors } = await open(dashboard.url));
      // begin, 4 batches + epoch + samples per epoch
      await waitForEvents(page, 1 + 6 * epoch);
      seen.push(await chartsOf(page));
    });
    try {
      await kiln.fit(model, batches(xorData(64, 3), 16), {
        epochs: 3,
        loss: (out, y) => kiln.crossEntropy(out, y),
        optimizer: opt,
        callbacks: [new train.LRScheduler(schedule), { onBatchEnd: (_b, logs) => void steps.push({ loss: logs.loss!, lr: logs.lr }) }, dashboard, reader],
        verbose: 0,
      });
      expect(seen[0]!.batch.x).toEqual([1, 2, 3, 4]);
      expect(seen[1]!.batch.x).toEqual([...Array(12).keys()].map((i) => i + 1));
      expect(seen[1]!.batch.series.loss).toEqual(steps.map((s) => s.loss));
      expect(seen[1]!.lr.series.lr).toEqual(steps.map((s) => s.lr));
      expect(new Set(seen[1]!.lr.series.lr)).toEqual(new Set([0.1, 0.05, 0.025]));
      // the samples image of the last epoch: 4 tiles 6x6, scale 2, 2 columns -> 2*12 + 3*2 = 30 px square
      const img = await page.evaluate(() => {
        const el = document.querySelector('.kiln-dash-samples img') as HTMLImageElement;
        return { w: el.naturalWidth, h: el.naturalHeight, caption: el.alt };
      });
      expect(img).toEqual({ w: 30, h: 30, caption: 'samples, epoch 3' });
      // still serving after fit (keepOpen), until close()
      expect((await fetch(dashboard.url)).status).toBe(200);
      await dashboard.close();
      await expect(fetch(dashboard.url)).rejects.toThrow();
      expect(errors).toEqual([]);
    } finally {
      await page?.close();
      await dashboard.close();
      opt.dispose();
      model.dispose();
    }
  }, 60_000);

  it('the learning-curve page draws every axis label inside its chart, small learning rates included', async () => {
    const epochs = [...Array(8).keys()].map((i) => ({ epoch: i + 1, loss: 1 / (i + 1), valLoss: 1.1 / (i + 1), accuracy: 1 - 0.5 / (i + 1), lr: Math.max(1e-5, 1e-3 * 0.5 ** i) }));
    const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
    try {
      await page.setContent(train.learningCurvesHtml({ epochs, stoppedEarly: false }, 'small learning rates'));
      const boxes: { svg: number; text: string; x: number; right: number; width: number }[] = await page.evaluate(() =>
        [...document.querySelectorAll('svg')].flatMap((svg, i) =>
          [...svg.querySelectorAll('text')].map((t) => {
            const b = (t as SVGTextElement).getBBox();
            return { svg: i, text: t.textContent ?? '', x: b.x, right: b.x + b.width, width: Number(svg.getAttribute('width')) };
          }),
        ),
      );
      expect(boxes.length).toBeGreaterThan(20);
      for (const b of boxes) {
        expect(b.x, `label "${b.text}" starts left of its chart`).toBeGreaterThanOrEqual(0);
        expect(b.right, `label "${b.text}" ends right of its chart`).toBeLessThanOrEqual(b.width);
      }
      // the lr axis reads in exponent form: 1.00e-3 at the top, 1.00e-5 at the bottom
      const lrLabels = boxes.filter((b) => b.svg === 2).map((b) => b.text);
      expect(lrLabels).toContain('1.00e-3');
      expect(lrLabels).toContain('1.00e-5');
    } finally {
      await page.close();
    }
  });

  it('in a page, fit({ dashboard: true }) appends the same view and it updates while the page trains', async () => {
    buildWeb();
    // @ts-expect-error: a plain .mjs script without type declarations
    const { serve } = await import('../../scripts/serve-web.mjs');
    const { server, url } = await serve({ port: 0, isolated: false });
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e: Error) => errors.push(e.message));
    try {
      await page.goto(`${url}package.json`);
      await page.addScriptTag({ type: 'module', content: "import * as kiln from '/dist-web/kiln.js'; await kiln.init(); window.kiln = kiln;" });
      await page.waitForFunction(() => (window as any).kiln !== undefined, null, { timeout: 30_000 });
      const result = await page.evaluate(async () => {
        const kiln = (window as any).kiln;
        const xs = new Float32Array(64 * 2).map((_, i) => Math.sin(i * 1.7));
        const ys = Int32Array.from({ length: 64 }, (_, i) => (xs[2 * i]! * xs[2 * i + 1]! > 0 ? 1 : 0));
        const batches = () => [0, 32].map((b) => ({ x: kiln.tensor(xs.subarray(2 * b, 2 * (b + 32)), [32, 2]), y: kiln.tensor(ys.subarray(b, b + 32), [32], 'int32') }));
        const model = new kiln.nn.Sequential(new kiln.nn.Linear(2, 16, { seed: 1 }), new kiln.nn.ReLU(), new kiln.nn.Linear(16, 2, { seed: 2 }));
        const optimizer = new kiln.optim.Adam(model.parameters(), { lr: 0.02 });
        const seen: number[] = [];
        // reads the charts the page shows at the end of epochs 2 and 4 (the dashboard runs after this)
        const reader = {
          onEpochEnd: (epoch: number) => {
            if (epoch === 2 || epoch === 4) seen.push(document.querySelectorAll('.kiln-dash-chart canvas').length, Number(/epoch (\d+)/.exec(document.querySelector('.kiln-dash-status')?.textContent ?? '')?.[1] ?? 0));
          },
        };
        const history = await kiln.fit(model, { [Symbol.iterator]: () => batches()[Symbol.iterator](), length: 2 }, {
          epochs: 4, loss: (o: any, t: any) => kiln.crossEntropy(o, t), optimizer, verbose: 0, callbacks: [reader], dashboard: { title: 'in the page' },
        });
        await new Promise((r) => requestAnimationFrame(r));
        return { seen, heading: document.querySelector('.kiln-dash h2')?.textContent, status: document.querySelector('.kiln-dash-status')?.textContent, epochs: history.epochs.length };
      });
      // at epoch 2's end the page showed epoch 2's steps, at epoch 4's end epoch 4's: it updated during the run
      expect(result.seen[1]).toBe(2);
      expect(result.seen[3]).toBe(4);
      expect(result.seen[2]).toBeGreaterThanOrEqual(2); // charts drawn (uPlot canvases) by then
      expect(result.heading).toBe('in the page');
      expect(result.status).toMatch(/^finished; epoch 4\/?\d* done: loss /);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
      await new Promise((r) => server.close(r));
    }
  }, 120_000);

  it('rejects a bad port, naming Dashboard', () => {
    expect(() => new train.Dashboard({ port: -1 })).toThrow(/Dashboard: port must be/);
  });
});
