/**
 * Saved models in a real browser (Debian's chromium through playwright-core, the bundle
 * dist-web/kiln.js served by scripts/serve-web.mjs):
 *
 * - a model trained in the page with kiln.data's loader and kiln.fit is saved to IndexedDB, and a
 *   second page of the same profile loads it back and predicts exactly what the first predicted;
 * - a model saved by Node's saveModel (native backend), served by the test server, loads from its
 *   URL and predicts what the native backend predicts;
 * - `downloads://` hands the user two files that Node's loadModel reads back with the page's weights;
 * - bad sources and destinations give errors that name loadModel/saveModel and the source.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { buildWeb, launchChromium, ROOT, skipBrowser } from './chromium.js';

/** 16 probe inputs of 4 features, the same in Node and in the pages. */
const PROBE = Array.from({ length: 64 }, (_, i) => Math.sin(i * 1.7) * 2);

/** The network both sides build from config.layers: Linear, Tanh, Linear. */
function nodeModel(layers: number[]): kiln.nn.Sequential {
  return new kiln.nn.Sequential(new kiln.nn.Linear(layers[0]!, layers[1]!, { seed: 3 }), new kiln.nn.Tanh(), new kiln.nn.Linear(layers[1]!, layers[2]!, { seed: 4 }));
}

describe.skipIf(skipBrowser)('saveModel / loadModel in chromium', () => {
  let browser: any;
  let server: any;
  let base = '';
  let work = '';

  beforeAll(async () => {
    buildWeb();
    work = mkdtempSync(join(tmpdir(), 'kiln-web-save-'));
    // A page on the server's origin that loads the bundle as window.kiln.
    mkdirSync(join(work, 'page'));
    writeFileSync(
      join(work, 'page', 'index.html'),
      `<!doctype html><meta charset="utf-8"><title>kiln</title>
<script type="module">
  import * as kiln from '/dist-web/kiln.js';
  await kiln.init();
  window.kiln = kiln;
</script>
`,
    );
    // A directory whose config.json is JSON but not a saved model's.
    mkdirSync(join(work, 'not-a-model'));
    writeFileSync(join(work, 'not-a-model', 'config.json'), '{"layers": [4, 2]}\n');
    // @ts-expect-error: a plain .mjs script without type declarations
    const { serve } = await import('../../scripts/serve-web.mjs');
    ({ server, url: base } = await serve({ port: 0, isolated: false, mounts: { '/work/': work } }));
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    if (server) await new Promise((r) => server.close(r));
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** A page with the bundle loaded as window.kiln; fails on any page error. */
  async function openPage(context: any): Promise<{ page: any; errors: string[] }> {
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e: Error) => errors.push(e.message));
    await page.goto(`${base}work/page/index.html`);
    await page.waitForFunction(() => (window as any).kiln !== undefined, null, { timeout: 30_000 });
    return { page, errors };
  }

  it('trains with fit, saves to IndexedDB, and a fresh page loads the same predictions', async () => {
    const context = await browser.newContext();
    const first = await openPage(context);
    const trained = await first.page.evaluate(async (probe: number[]) => {
      const kiln = (window as any).kiln;
      // y = 1 when x0 + x1 > x2 * x3: a small problem the MLP learns in a few epochs.
      const random = new kiln.data.Random(5);
      const n = 256;
      const x = new Float32Array(n * 4);
      const y = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < 4; j++) x[4 * i + j] = random.next() * 2 - 1;
        y[i] = x[4 * i]! + x[4 * i + 1]! > x[4 * i + 2]! * x[4 * i + 3]! ? 1 : 0;
      }
      const loader = new kiln.data.DataLoader(new kiln.data.TensorDataset(x, [4], y), { batchSize: 32, shuffle: true, seed: 1 });
      const layers = [4, 16, 2];
      const model = new kiln.nn.Sequential(new kiln.nn.Linear(4, 16, { seed: 3 }), new kiln.nn.Tanh(), new kiln.nn.Linear(16, 2, { seed: 4 }));
      const optimizer = new kiln.optim.Adam(model.parameters(), { lr: 0.03 });
      const history = await kiln.fit(model, loader, { epochs: 15, loss: (o: any, t: any) => kiln.crossEntropy(o, t), optimizer, metrics: ['accuracy'], verbose: 0 });
      optimizer.dispose();
      model.eval();
      const predictions = kiln.tidy(() => Array.from(model.forward(kiln.tensor(probe, [16, 4])).dataSync()));
      await kiln.saveModel('indexeddb://probe-mlp', { stateDict: model.stateDict(), config: { layers } });
      model.dispose();
      const epochs = history.epochs;
      return { predictions, firstLoss: epochs[0].loss, lastLoss: epochs[epochs.length - 1].loss, accuracy: epochs[epochs.length - 1].accuracy };
    }, PROBE);
    console.log(`browser fit before saving: loss ${trained.firstLoss.toFixed(3)} -> ${trained.lastLoss.toFixed(3)}, accuracy ${trained.accuracy}`);
    expect(trained.lastLoss).toBeLessThan(trained.firstLoss * 0.5);
    expect(trained.accuracy).toBeGreaterThan(0.9);
    await first.page.close();

    const second = await openPage(context);
    const loaded = await second.page.evaluate(async (probe: number[]) => {
      const kiln = (window as any).kiln;
      const { stateDict, config } = await kiln.loadModel('indexeddb://probe-mlp');
      const [a, b, c] = config.layers;
      const model = new kiln.nn.Sequential(new kiln.nn.Linear(a, b, { seed: 99 }), new kiln.nn.Tanh(), new kiln.nn.Linear(b, c, { seed: 98 }));
      model.loadStateDict(stateDict);
      kiln.dispose(stateDict);
      model.eval();
      const predictions = kiln.tidy(() => Array.from(model.forward(kiln.tensor(probe, [16, 4])).dataSync()));
      model.dispose();
      return { predictions, config };
    }, PROBE);
    expect(loaded.config).toEqual({ layers: [4, 16, 2] });
    expect(loaded.predictions).toEqual(trained.predictions);
    expect([...first.errors, ...second.errors]).toEqual([]);
    await context.close();
  }, 120_000);

  it("loads a model saved by Node's saveModel from the server's URL", async () => {
    const model = nodeModel([4, 16, 2]);
    kiln.saveModel(join(work, 'node-model'), { stateDict: model.stateDict(), config: { layers: [4, 16, 2] } });
    model.eval();
    const native = kiln.tidy(() => Array.from(model.forward(kiln.tensor(PROBE, [16, 4])).dataSync()));
    model.dispose();

    const context = await browser.newContext();
    const { page, errors } = await openPage(context);
    const web = await page.evaluate(async (probe: number[]) => {
      const kiln = (window as any).kiln;
      const run = async (source: string) => {
        const { stateDict, config } = await kiln.loadModel(source);
        const [a, b, c] = config.layers;
        const model = new kiln.nn.Sequential(new kiln.nn.Linear(a, b), new kiln.nn.Tanh(), new kiln.nn.Linear(b, c));
        model.loadStateDict(stateDict);
        kiln.dispose(stateDict);
        model.eval();
        const out = kiln.tidy(() => Array.from(model.forward(kiln.tensor(probe, [16, 4])).dataSync()));
        model.dispose();
        return out;
      };
      // relative, without the trailing slash, and absolute
      return { relative: await run('../node-model'), absolute: await run(new URL('/work/node-model/', location.href).href), tensors: kiln.memory().numTensors };
    }, PROBE);
    expect(web.relative).toEqual(web.absolute);
    web.relative.forEach((v: number, i: number) => expect(Math.abs(v - native[i]!)).toBeLessThan(1e-5));
    expect(web.tensors).toBe(0);
    expect(errors).toEqual([]);
    await context.close();
  }, 60_000);

  it("downloads two files that Node's loadModel reads back", async () => {
    const context = await browser.newContext({ acceptDownloads: true });
    const { page, errors } = await openPage(context);
    const downloads: any[] = [];
    page.on('download', (d: any) => downloads.push(d));
    const weights = await page.evaluate(async () => {
      const kiln = (window as any).kiln;
      const model = new kiln.nn.Sequential(new kiln.nn.Linear(3, 5, { seed: 11 }), new kiln.nn.ReLU(), new kiln.nn.Linear(5, 2, { seed: 12 }));
      await kiln.saveModel('downloads://', { stateDict: model.stateDict(), config: { layers: [3, 5, 2], note: 'from a page' } });
      const out = Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]: [string, any]) => [k, { shape: t.shape, values: Array.from(t.dataSync()) }]));
      model.dispose();
      return out;
    });
    await expect.poll(() => downloads.length, { timeout: 10_000 }).toBe(2);
    const dir = join(work, 'downloaded');
    mkdirSync(dir);
    for (const d of downloads) await d.saveAs(join(dir, d.suggestedFilename()));
    expect(downloads.map((d) => d.suggestedFilename()).sort()).toEqual(['config.json', 'model.safetensors']);
    // The bundle records the package's version (build-web writes it in; a page has no package.json).
    const written = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(written.kilnVersion).toBe(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
    const { stateDict, config } = kiln.loadModel(dir);
    expect(config).toEqual({ layers: [3, 5, 2], note: 'from a page' });
    expect(Object.keys(stateDict).sort()).toEqual(Object.keys(weights).sort());
    for (const [name, t] of Object.entries(stateDict)) {
      expect(t.shape).toEqual(weights[name].shape);
      expect(Array.from(t.dataSync())).toEqual(weights[name].values);
    }
    kiln.dispose(stateDict);
    expect(errors).toEqual([]);
    await context.close();
  }, 60_000);

  it('names the function and the source in its errors', async () => {
    const context = await browser.newContext();
    const { page } = await openPage(context);
    const messages = await page.evaluate(async () => {
      const kiln = (window as any).kiln;
      const message = async (f: () => Promise<unknown>) => {
        try {
          await f();
          return 'no error';
        } catch (e) {
          return (e as Error).message;
        }
      };
      const model = new kiln.nn.Linear(2, 2);
      const saved = { stateDict: model.stateDict(), config: { layers: [2, 2] } };
      const out = {
        missingUrl: await message(() => kiln.loadModel('/work/no-such-model/')),
        notAModel: await message(() => kiln.loadModel('/work/not-a-model')),
        missingName: await message(async () => {
          await kiln.saveModel('indexeddb://present', saved);
          return kiln.loadModel('indexeddb://absent');
        }),
        badDestination: await message(() => kiln.saveModel('https://example.com/m/', saved)),
        namedDownload: await message(() => kiln.saveModel('downloads://m', saved)),
        badConfig: await message(() => kiln.saveModel('indexeddb://x', { stateDict: saved.stateDict, config: [1, 2] })),
      };
      model.dispose();
      return out;
    });
    expect(messages.missingUrl).toMatch(/^loadModel: GET 'http:\/\/127\.0\.0\.1:\d+\/work\/no-such-model\/config\.json' answered HTTP 404/);
    expect(messages.notAModel).toMatch(/^loadModel: 'http:\/\/.*\/work\/not-a-model\/config\.json' is corrupt or not from saveModel: "format" should be "kiln-model"/);
    expect(messages.missingName).toBe("loadModel: no model named 'absent' in IndexedDB (saved there: 'present')");
    expect(messages.badDestination).toMatch(/^saveModel: cannot save to 'https:\/\/example\.com\/m\/': in a browser the destinations are/);
    expect(messages.namedDownload).toMatch(/^saveModel: 'downloads:\/\/m': a download keeps the file names/);
    expect(messages.badConfig).toMatch(/^saveModel: config must be a JSON object/);
    await context.close();
  }, 60_000);
});
