/**
 * Kiln in a real browser: Debian's chromium (through playwright-core) loads the demo page
 * examples/web/ from scripts/serve-web.mjs, with the browser bundle dist-web/kiln.js.
 *
 * The set-up trains the model the page needs (a small MNIST MLP, a few seconds on the native
 * backend) and saves it with the io module into a temporary directory the server mounts at
 * /model/, so the test runs on a fresh clone (scripts/test.mjs installs chromium if missing).
 *
 * - digits drawn on the page's canvas (a mouse stroke, and MNIST test digits painted in) are
 *   classified correctly and exactly as the native backend classifies the same 784 inputs;
 * - 2,000 predictions keep WASM linear memory and kiln.memory() flat after warm-up, and freed
 *   tensors' memory is reused (allocating and disposing 4 MB tensors does not grow memory);
 * - fit() trains a small model in the page (progress lines on the console, onStep callback);
 * - on a cross-origin isolated page the threaded build runs with 2 threads and its GEMM and
 *   elementwise results equal the single-thread ones, and the workers do run chunks of them;
 *   without isolation the page runs the single-threaded build.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { buildWeb, launchChromium, skipBrowser } from './chromium.js';
const HIDDEN = 64;

/** The same network as the page builds from config.json: Linear, ReLU, Linear. */
function mlp(layers: number[]): kiln.nn.Sequential {
  const modules: kiln.nn.Module[] = [];
  for (let i = 0; i + 1 < layers.length; i++) {
    if (i > 0) modules.push(new kiln.nn.ReLU());
    modules.push(new kiln.nn.Linear(layers[i]!, layers[i + 1]!, { seed: 7 + i }));
  }
  return new kiln.nn.Sequential(...modules);
}

/** Trains 784-64-10 on 12,000 MNIST training digits for 3 epochs (a few seconds, native backend). */
async function trainSmallMnist(dir: string): Promise<{ model: kiln.nn.Sequential; mnist: kiln.data.Mnist }> {
  const mnist = kiln.data.loadMnist();
  const n = 12_000;
  const x = new Float32Array(n * 784);
  for (let i = 0; i < x.length; i++) x[i] = mnist.trainImages[i]! / 255;
  const dataset = new kiln.data.TensorDataset(x, [784], mnist.trainLabels.slice(0, n));
  const loader = new kiln.data.DataLoader(dataset, { batchSize: 128, shuffle: true, seed: 1 });
  const model = mlp([784, HIDDEN, 10]);
  const optimizer = new kiln.optim.Adam(model.parameters(), { lr: 2e-3 });
  await kiln.fit(model, loader, { epochs: 3, loss: (y, t) => kiln.crossEntropy(y, t), optimizer, verbose: 0 });
  optimizer.dispose();
  kiln.saveModel(dir, { stateDict: model.stateDict(), config: { architecture: 'mlp', layers: [784, HIDDEN, 10], activation: 'relu', input: 'pixels / 255' } });
  model.eval();
  return { model, mnist };
}

const nativeProbs = (model: kiln.nn.Module, input: number[]): number[] =>
  Array.from(kiln.tidy(() => kiln.softmax(model.forward(kiln.tensor(input, [1, 784])), -1).dataSync()));
const argmax = (p: number[]): number => p.indexOf(Math.max(...p));

interface DemoResult {
  input: number[];
  probs: number[];
  label: number;
  ms: number;
}

describe.skipIf(skipBrowser)('examples/web in chromium', () => {
  let browser: any;
  let servers: any[] = [];
  let isolatedUrl = '';
  let plainUrl = '';
  let modelDir = '';
  let model: kiln.nn.Sequential;
  let mnist: kiln.data.Mnist;

  beforeAll(async () => {
    buildWeb();
    modelDir = mkdtempSync(join(tmpdir(), 'kiln-web-model-'));
    ({ model, mnist } = await trainSmallMnist(modelDir));
    // @ts-expect-error: a plain .mjs script without type declarations
    const { serve } = await import('../../scripts/serve-web.mjs');
    const isolated = await serve({ port: 0, mounts: { '/model/': modelDir } });
    const plain = await serve({ port: 0, isolated: false, mounts: { '/model/': modelDir } });
    servers = [isolated.server, plain.server];
    [isolatedUrl, plainUrl] = [isolated.url, plain.url];
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    for (const s of servers) await new Promise((r) => s.close(r));
    model?.dispose?.();
    if (modelDir) rmSync(modelDir, { recursive: true, force: true });
  });

  /** Opens the demo page with the trained model; fails on any page error. */
  async function openDemo(base: string, query = ''): Promise<{ page: any; errors: string[]; logs: string[] }> {
    const page = await browser.newPage();
    const errors: string[] = [];
    const logs: string[] = [];
    page.on('pageerror', (e: Error) => errors.push(e.message));
    page.on('console', (m: any) => logs.push(m.text()));
    await page.goto(`${base}examples/web/?model=/model/${query}`);
    await page.waitForFunction(() => (window as any).kilnDemo?.ready === true || (window as any).kilnDemo?.error, null, { timeout: 60_000 });
    expect(await page.evaluate(() => (window as any).kilnDemo.error ?? null)).toBeNull();
    expect(errors).toEqual([]);
    return { page, errors, logs };
  }

  it('classifies a digit drawn with the mouse and painted MNIST digits exactly like the native backend', async () => {
    const { page, errors } = await openDemo(isolatedUrl);

    // A "1": one slightly slanted vertical stroke with the mouse, as a user draws it.
    const box = await page.locator('#pad').boundingBox();
    const x = box.x + box.width / 2;
    await page.mouse.move(x, box.y + 50);
    await page.mouse.down();
    for (let y = 50; y <= 230; y += 10) await page.mouse.move(x + (y - 50) * 0.05, box.y + y);
    await page.mouse.up();
    await page.waitForFunction(() => (window as any).kilnDemo.last !== null, null, { timeout: 10_000 });
    const drawn: DemoResult = await page.evaluate(() => (window as any).kilnDemo.predict());
    expect(await page.locator('#prediction').textContent()).toBe(String(drawn.label));
    expect(drawn.input.some((v) => v > 0.5)).toBe(true);
    const native = nativeProbs(model, drawn.input);
    console.log(`browser: drawn "1" -> ${drawn.label} in ${drawn.ms.toFixed(2)} ms (native: ${argmax(native)})`);
    expect(drawn.label).toBe(1);
    expect(drawn.label).toBe(argmax(native));
    for (let d = 0; d < 10; d++) expect(Math.abs(drawn.probs[d]! - native[d]!)).toBeLessThan(1e-4);

    // MNIST test digits (the first of each of three classes), painted 10x onto the 280x280 pad.
    for (const digit of [3, 7, 0]) {
      const i = mnist.testLabels.indexOf(digit);
      const pixels = Array.from(mnist.testImages.subarray(i * 784, (i + 1) * 784));
      const web: DemoResult = await page.evaluate((px: number[]) => {
        const pad = document.getElementById('pad') as HTMLCanvasElement;
        const ctx = pad.getContext('2d')!;
        const img = ctx.createImageData(280, 280);
        for (let y = 0; y < 280; y++) {
          for (let x = 0; x < 280; x++) {
            const v = px[Math.floor(y / 10) * 28 + Math.floor(x / 10)]!;
            img.data.set([v, v, v, 255], (y * 280 + x) * 4);
          }
        }
        ctx.putImageData(img, 0, 0);
        return (window as any).kilnDemo.predict();
      }, pixels);
      const p = nativeProbs(model, web.input);
      expect(web.label, `MNIST test digit ${i} (a ${digit})`).toBe(digit);
      expect(web.label).toBe(argmax(p));
      for (let d = 0; d < 10; d++) expect(Math.abs(web.probs[d]! - p[d]!)).toBeLessThan(1e-4);
    }
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);

  it('keeps WASM memory flat over 2,000 predictions and reuses freed tensors', async () => {
    const { page } = await openDemo(isolatedUrl);
    const report = await page.evaluate(async () => {
      const kiln = (window as any).kilnDemo.kiln;
      const demo = (window as any).kilnDemo;
      const pad = document.getElementById('pad') as HTMLCanvasElement;
      const ctx = pad.getContext('2d')!;
      ctx.fillStyle = '#fff';
      ctx.fillRect(120, 40, 40, 200);
      const snapshot = () => ({ wasmBytes: kiln.wasmMemoryBytes(), ...kiln.memory() });
      for (let i = 0; i < 100; i++) await demo.predict(); // warm-up
      const afterWarmup = snapshot();
      const labels = new Set<number>();
      for (let i = 0; i < 2000; i++) labels.add((await demo.predict()).label);
      const afterLoop = snapshot();
      // Reuse: 4 MB tensors created and disposed (directly and through tidy) 300 times.
      const big = () => kiln.full([1024, 1024], 1.5);
      big().dispose(); // warm-up: one round of each pattern
      kiln.tidy(() => void big().mul(2).sum());
      const beforeBig = snapshot();
      for (let i = 0; i < 150; i++) big().dispose();
      for (let i = 0; i < 150; i++) kiln.tidy(() => void big().mul(2).sum());
      const afterBig = snapshot();
      return { afterWarmup, afterLoop, beforeBig, afterBig, labels: [...labels] };
    });
    console.log(`browser memory: ${JSON.stringify(report)}`);
    expect(report.labels).toHaveLength(1); // same drawing, same answer every time
    expect(report.afterLoop).toEqual(report.afterWarmup);
    expect(report.afterBig).toEqual(report.beforeBig);
    await page.close();
  }, 60_000);

  it('imports an ONNX file from bytes in the page and exports one there (kiln.onnx)', async () => {
    // Node exports a small CNN; the page loads the bytes, runs them on WASM and must match Node's
    // output, then exports its own model and loads that back.
    const cnn = new kiln.nn.Sequential(new kiln.nn.Conv2d(1, 4, 3, { padding: 1 }), new kiln.nn.ReLU(), new kiln.nn.GlobalAvgPool2d(), new kiln.nn.Flatten(), new kiln.nn.Linear(4, 3));
    const x = kiln.randn([2, 1, 6, 6], { seed: 5 });
    const bytes = kiln.onnx.save(cnn, [x]);
    const expected = kiln.tidy(() => Array.from(cnn.eval().forward(x).dataSync()));
    const input = Array.from(x.dataSync());
    cnn.dispose();
    x.dispose();
    const { page } = await openDemo(isolatedUrl);
    const result = await page.evaluate(async ({ bytes, input }: { bytes: number[]; input: number[] }) => {
      const kiln = (window as any).kilnDemo.kiln;
      const model = kiln.onnx.load(new Uint8Array(bytes));
      const got = kiln.tidy(() => Array.from(model.forward(kiln.tensor(new Float32Array(input), [2, 1, 6, 6])).dataSync()));
      const mlp = new kiln.nn.Sequential(new kiln.nn.Linear(3, 2), new kiln.nn.Tanh());
      const exported = kiln.onnx.save(mlp, [kiln.ones([1, 3])]);
      const again = kiln.onnx.load(exported);
      const same = kiln.tidy(() => {
        const a = mlp.forward(kiln.ones([1, 3])).dataSync();
        const b = again.forward(kiln.ones([1, 3])).dataSync();
        return Math.max(...Array.from(a, (v: number, i: number) => Math.abs(v - b[i])));
      });
      return { got, same, params: model.namedParameters().map(([n]: [string]) => n) };
    }, { bytes: Array.from(bytes), input });
    result.got.forEach((v: number, i: number) => expect(Math.abs(v - expected[i]!)).toBeLessThan(1e-4));
    expect(result.same).toBeLessThan(1e-6);
    expect(result.params).toEqual(['0.weight', '0.bias', '4.weight', '4.bias']);
    await page.close();
  }, 120_000);

  it('trains a small model with fit() in the page', async () => {
    const { page, logs } = await openDemo(isolatedUrl);
    const result = await page.evaluate(async () => {
      const kiln = (window as any).kilnDemo.kiln;
      // Two interleaved classes no straight line separates: x in [-1, 1]^2, label = (x0 * x1 > 0).
      let s = 12345;
      const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
      const n = 512;
      const xs = new Float32Array(n * 2);
      const ys = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        xs[2 * i] = rand();
        xs[2 * i + 1] = rand();
        ys[i] = xs[2 * i]! * xs[2 * i + 1]! > 0 ? 1 : 0;
      }
      const batches = () => {
        const out = [];
        for (let b = 0; b < n; b += 64) out.push({ x: kiln.tensor(xs.subarray(2 * b, 2 * (b + 64)), [64, 2]), y: kiln.tensor(ys.subarray(b, b + 64), [64], 'int32') });
        return out;
      };
      const model = new kiln.nn.Sequential(new kiln.nn.Linear(2, 32, { seed: 1 }), new kiln.nn.ReLU(), new kiln.nn.Linear(32, 2, { seed: 2 }));
      const optimizer = new kiln.optim.Adam(model.parameters(), { lr: 0.02 });
      const loss = (y: any, t: any) => kiln.crossEntropy(y, t);
      const steps: number[] = [];
      const data = { [Symbol.iterator]: () => batches()[Symbol.iterator](), length: n / 64 };
      const history = await kiln.fit(model, data, { epochs: 40, loss, optimizer, metrics: ['accuracy'], onStep: (info: any) => steps.push(info.loss) });
      const before = kiln.memory();
      optimizer.dispose();
      model.dispose();
      const epochs = history.epochs;
      return { first: epochs[0], last: epochs[epochs.length - 1], steps: steps.length, tensorsAtEnd: before.numTensors };
    });
    console.log(`browser fit: epoch 1 ${JSON.stringify(result.first)}, epoch 40 ${JSON.stringify(result.last)}`);
    expect(result.steps).toBe(40 * 8);
    expect(result.first.loss).toBeGreaterThan(0.5);
    expect(result.last.loss).toBeLessThan(0.15);
    expect(result.last.accuracy).toBeGreaterThan(0.95);
    // verbose progress went to the console (no process.stdout in a page), one line per epoch.
    expect(logs.filter((l) => /^epoch \d+\/40 /.test(l))).toHaveLength(40);
    await page.close();
  }, 60_000);

  it('runs the threaded build on a cross-origin isolated page, the single-threaded one otherwise', async () => {
    const isolated = await openDemo(isolatedUrl);
    const threaded = await isolated.page.evaluate(async () => {
      const kiln = (window as any).kilnDemo.kiln;
      const a = kiln.randn([300, 257], { seed: 1 });
      const b = kiln.randn([257, 310], { seed: 2 });
      const x = kiln.randn([200_000], { seed: 3 });
      const run = () => ({ mm: Array.from(kiln.matmul(a, b).dataSync()), ew: Array.from(x.mul(x).add(1).dataSync()) });
      const threads = kiln.numThreads();
      const multi = run();
      kiln.setNumThreads(1);
      const single = run();
      // The workers take part: chunks they run while 2 threads are allowed, none with 1.
      const c = kiln.randn([512, 512], { seed: 4 });
      const chunks = () => kiln.wasmThreadStats().workerChunks;
      const c0 = chunks();
      for (let i = 0; i < 5; i++) kiln.matmul(c, c).dispose();
      const withOne = chunks() - c0;
      kiln.setNumThreads(threads);
      const c1 = chunks();
      for (let i = 0; i < 20; i++) kiln.matmul(c, c).dispose();
      const withAll = chunks() - c1;
      kiln.dispose([a, b, x, c]);
      return {
        variant: kiln.wasmVariant(),
        isolated: (window as any).crossOriginIsolated,
        threads,
        workers: kiln.wasmThreadStats().workers,
        withOne,
        withAll,
        same: JSON.stringify(multi) === JSON.stringify(single),
        sample: multi.mm.slice(0, 3),
      };
    });
    const want = kiln.tidy(() => kiln.matmul(kiln.randn([300, 257], { seed: 1 }), kiln.randn([257, 310], { seed: 2 })).dataSync().slice(0, 3));
    console.log(`browser threads: ${JSON.stringify(threaded)}`);
    expect(threaded.isolated).toBe(true);
    expect(threaded.variant).toBe('threads');
    expect(threaded.threads).toBeGreaterThanOrEqual(2);
    expect(threaded.workers).toBe(threaded.threads - 1);
    expect(threaded.withOne).toBe(0);
    expect(threaded.withAll).toBeGreaterThan(0);
    expect(threaded.same).toBe(true);
    threaded.sample.forEach((v: number, i: number) => expect(Math.abs(v - want[i]!)).toBeLessThan(1e-3 * (1 + Math.abs(want[i]!))));
    await isolated.page.close();

    const plain = await openDemo(plainUrl);
    const single = await plain.page.evaluate(async () => {
      const kiln = (window as any).kilnDemo.kiln;
      return { variant: kiln.wasmVariant(), threads: kiln.numThreads(), isolated: (window as any).crossOriginIsolated };
    });
    expect(single).toEqual({ variant: 'relaxed', threads: 1, isolated: false });
    await plain.page.close();
  }, 60_000);
});
