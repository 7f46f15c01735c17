/**
 * Kiln's GPU backend in a page: kiln-gpu on WebGPU (the GPU WASM module, bindings/wasm's `gpu`
 * feature), in Debian's chromium with WebGPU on a CPU implementation (Mesa's llvmpipe through
 * ANGLE where lavapipe is installed, else SwiftShader: tests/browser/chromium.ts WEBGPU_ADAPTER),
 * so this checks correctness, not speed.
 *
 * - `await setBackend('gpu')` loads the GPU module on demand and opens WebGPU; gpuInfo() names
 *   the adapter (llvmpipe; or vendor 'google', architecture 'swiftshader') and says it is software;
 * - ops and gradients on WebGPU agree with the WASM backend in the same page;
 * - training steps read nothing back (readbacks stay flat until `await loss.data()`), the
 *   losses equal WASM's from the same seeds, and the buffer pool stops creating buffers;
 * - the MNIST MLP trains in the page on WebGPU to WASM's test accuracy from the same seeds, with a
 *   hand-written loop and with `fit` (metrics, validation, callbacks and the in-page dashboard);
 * - a synchronous read of a GPU tensor is an Error naming `await t.data()`; an out-of-range
 *   index found by a kernel is reported by the next read (deferred, as natively);
 * - the draw-a-digit demo (examples/web) runs on WebGPU, says so, and predicts as native does;
 * - without WebGPU, `setBackend('gpu')` warns why and WASM stays in use.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { buildWeb, launchChromium, skipBrowser, WEBGPU_ADAPTER } from './chromium.js';

/** How the page names the adapter: llvmpipe in ANGLE's description, or SwiftShader's vendor and architecture. */
const ADAPTER_NAME = WEBGPU_ADAPTER === 'lavapipe' ? /llvmpipe/ : /google swiftshader/;

/** The first 2,000 MNIST training digits and 1,000 test digits, as plain arrays for page.evaluate. */
function mnistDigits() {
  const mnist = kiln.data.loadMnist();
  const [TRAIN, TEST] = [2000, 1000];
  return {
    train: Array.from(mnist.trainImages.subarray(0, TRAIN * 784)),
    trainLabels: Array.from(mnist.trainLabels.subarray(0, TRAIN)),
    test: Array.from(mnist.testImages.subarray(0, TEST * 784)),
    testLabels: Array.from(mnist.testLabels.subarray(0, TEST)),
  };
}

describe.skipIf(skipBrowser)('the GPU backend on WebGPU in chromium', () => {
  let withGpu: any;
  let withoutGpu: any;
  let server: any;
  let url = '';
  let modelDir = '';
  let demoModel: kiln.nn.Sequential;

  beforeAll(async () => {
    buildWeb();
    // An untrained 784-16-10 MLP for the demo page: the test compares its predictions there with
    // the native backend's, which needs no training.
    modelDir = mkdtempSync(join(tmpdir(), 'kiln-webgpu-model-'));
    kiln.setBackend('native');
    demoModel = new kiln.nn.Sequential(new kiln.nn.Linear(784, 16, { seed: 3 }), new kiln.nn.ReLU(), new kiln.nn.Linear(16, 10, { seed: 4 }));
    demoModel.eval();
    kiln.saveModel(modelDir, { stateDict: demoModel.stateDict(), config: { architecture: 'mlp', layers: [784, 16, 10], activation: 'relu', input: 'pixels / 255' } });
    // @ts-expect-error: a plain .mjs script without type declarations
    const { serve } = await import('../../scripts/serve-web.mjs');
    ({ server, url } = await serve({ port: 0, isolated: false, mounts: { '/model/': modelDir } }));
    withGpu = await launchChromium([], { webgpu: WEBGPU_ADAPTER });
    withoutGpu = await launchChromium();
  }, 600_000);

  afterAll(async () => {
    await withGpu?.close();
    await withoutGpu?.close();
    server?.close();
    demoModel?.dispose();
    if (modelDir) rmSync(modelDir, { recursive: true, force: true });
  });

  /** A page of the server with kiln loaded (the WASM backend initialized) as `window.kiln`. */
  async function pageOf(browser: any): Promise<any> {
    const page = await browser.newPage();
    const logs: string[] = [];
    page.on('console', (m: any) => logs.push(m.text()));
    // Any page of the server (a secure context: localhost); this one is a 404 with no script.
    await page.goto(`${url}webgpu-test-page`);
    // A module script, not an import() inside evaluate (vitest would rewrite that import).
    await page.addScriptTag({ type: 'module', content: "import * as kiln from '/dist-web/kiln.js'; await kiln.init(); globalThis.kiln = kiln;" });
    await page.waitForFunction(() => (globalThis as any).kiln !== undefined);
    page.logs = logs;
    return page;
  }

  it('setBackend(gpu) opens WebGPU and gpuInfo names the adapter', async () => {
    const page = await pageOf(withGpu);
    const r = await page.evaluate(async () => {
      const kiln = (globalThis as any).kiln;
      const used = await kiln.setBackend('gpu');
      return { used, backend: kiln.getBackend(), info: kiln.gpuInfo() };
    });
    expect(r.used).toBe('gpu');
    expect(r.backend).toBe('gpu');
    expect(r.info.backend).toBe('BrowserWebGpu');
    if (WEBGPU_ADAPTER === 'swiftshader') expect([r.info.vendor, r.info.architecture]).toEqual(['google', 'swiftshader']);
    expect(r.info.adapter || `${r.info.vendor} ${r.info.architecture}`).toMatch(ADAPTER_NAME);
    expect(r.info.software).toBe(true);
    expect(r.info.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 1024 * 1024);
    await page.close();
  }, 120_000);

  it('ops and gradients on WebGPU equal the WASM backend in the same page', async () => {
    const page = await pageOf(withGpu);
    const r = await page.evaluate(async () => {
      const kiln = (globalThis as any).kiln;
      /** The same computation on the active backend: values and gradients, read asynchronously. */
      const run = async () => {
        const a = kiln.randn([33, 47], { seed: 3 }).setRequiresGrad();
        const b = kiln.randn([47, 29], { seed: 4 }).setRequiresGrad();
        const y = kiln.matmul(a, b).relu().softmax(-1).mul(kiln.randn([33, 29], { seed: 5 })).sum();
        y.backward();
        const [ga, gb] = [a.grad, b.grad];
        const out = { device: a.device, y: Array.from(await y.data()), ga: Array.from(await ga.data()), gb: Array.from(await gb.data()) };
        kiln.dispose([a, b, y, ga, gb]);
        return out;
      };
      await kiln.setBackend('wasm');
      const wasm = await run();
      await kiln.setBackend('gpu');
      const gpu = await run();
      return { wasm, gpu };
    });
    expect(r.gpu.device).toBe('gpu');
    expect(r.wasm.device).toBe('cpu');
    expect(r.gpu.y[0]).toBeCloseTo(r.wasm.y[0], 3);
    const worst = (x: number[], y: number[]) => Math.max(...x.map((v, i) => Math.abs(v - y[i]!)));
    expect(worst(r.gpu.ga, r.wasm.ga)).toBeLessThan(1e-4);
    expect(worst(r.gpu.gb, r.wasm.gb)).toBeLessThan(1e-4);
    await page.close();
  }, 120_000);

  it('training steps read nothing back, pool their buffers and match WASM from the same seeds', async () => {
    const page = await pageOf(withGpu);
    const r = await page.evaluate(async () => {
      const kiln = (globalThis as any).kiln;
      const train = async (name: string) => {
        await kiln.setBackend(name);
        const x = kiln.randn([64, 20], { seed: 11 });
        const y = kiln.tensor(Int32Array.from({ length: 64 }, (_, i) => i % 5));
        const model = new kiln.nn.Sequential(new kiln.nn.Linear(20, 32, { seed: 1 }), new kiln.nn.ReLU(), new kiln.nn.Linear(32, 5, { seed: 2 }));
        const opt = new kiln.optim.Adam(model.parameters(), { lr: 1e-2 });
        const losses: number[] = [];
        const reads: number[] = [];
        const created: number[] = [];
        for (let step = 0; step < 8; step++) {
          const before = name === 'gpu' ? kiln.gpuInfo().readbacks : 0;
          const loss = kiln.tidy(() => {
            const l = kiln.crossEntropy(model.forward(x), y);
            opt.zeroGrad();
            l.backward();
            opt.step();
            return l;
          });
          if (name === 'gpu') reads.push(kiln.gpuInfo().readbacks - before);
          losses.push((await loss.data())[0]);
          loss.dispose();
          if (name === 'gpu') created.push(kiln.gpuInfo().pool.created);
        }
        const onGpu = model.parameters().every((p: any) => p.device === 'gpu');
        model.dispose();
        opt.dispose();
        kiln.dispose([x, y]);
        return { losses, reads, created, onGpu };
      };
      return { wasm: await train('wasm'), gpu: await train('gpu') };
    });
    expect(r.gpu.onGpu).toBe(true);
    expect(r.gpu.reads, 'a training step reads nothing back').toEqual(r.gpu.reads.map(() => 0));
    expect(r.gpu.losses[7]).toBeLessThan(r.gpu.losses[0]);
    for (let i = 0; i < 8; i++) expect(r.gpu.losses[i]).toBeCloseTo(r.wasm.losses[i], 4);
    // After the first step every buffer comes from the pool.
    expect(r.gpu.created.slice(2), `buffers created after each step: ${r.gpu.created}`).toEqual(r.gpu.created.slice(2).map(() => r.gpu.created[1]));
    await page.close();
  }, 180_000);

  it('the MNIST MLP trains in the page on WebGPU to the accuracy it reaches on WASM from the same seeds', async () => {
    const digits = mnistDigits();
    const page = await pageOf(withGpu);
    const r = await page.evaluate(async (d: typeof digits) => {
      const kiln = (globalThis as any).kiln;
      const train = async (name: string) => {
        await kiln.setBackend(name);
        const pixels = (v: number[], n: number) => kiln.tensor(Float32Array.from(v, (p) => p / 255), [n, 784]);
        const [x, y, xt] = [pixels(d.train, d.trainLabels.length), kiln.tensor(Int32Array.from(d.trainLabels)), pixels(d.test, d.testLabels.length)];
        const model = new kiln.nn.Sequential(new kiln.nn.Linear(784, 64, { seed: 1 }), new kiln.nn.ReLU(), new kiln.nn.Linear(64, 10, { seed: 2 }));
        const opt = new kiln.optim.Adam(model.parameters(), { lr: 2e-3 });
        const readsBefore = name === 'gpu' ? kiln.gpuInfo().readbacks : 0;
        const losses: number[] = [];
        for (let epoch = 0; epoch < 4; epoch++) {
          for (let start = 0; start < d.trainLabels.length; start += 100) {
            const loss = kiln.tidy(() => {
              const l = kiln.crossEntropy(model.forward(x.slice([start, 0], [100, -1])), y.slice([start], [100]));
              opt.zeroGrad();
              l.backward();
              opt.step();
              return l;
            });
            if (start === 0) losses.push((await loss.data())[0]);
            loss.dispose();
          }
        }
        const reads = name === 'gpu' ? kiln.gpuInfo().readbacks - readsBefore : 0;
        const logits = kiln.noGrad(() => model.forward(xt));
        const predicted = kiln.argmax(logits, -1);
        const p = await predicted.data();
        const accuracy = (100 * d.testLabels.reduce((hits: number, label: number, i: number) => hits + (p[i] === label ? 1 : 0), 0)) / d.testLabels.length;
        kiln.dispose([x, y, xt, logits, predicted]);
        model.dispose();
        opt.dispose();
        return { accuracy, losses, reads };
      };
      return { wasm: await train('wasm'), gpu: await train('gpu') };
    }, digits);
    console.log(`[webgpu] MNIST MLP (${digits.trainLabels.length} digits, 4 epochs) in chromium: test accuracy wasm ${r.wasm.accuracy}%, webgpu ${r.gpu.accuracy}%`);
    expect(r.gpu.reads, 'one readback per loss read (4); the training steps read nothing').toBe(4);
    expect(r.gpu.losses[3]).toBeLessThan(r.gpu.losses[0] / 3);
    expect(r.wasm.accuracy).toBeGreaterThan(80);
    expect(Math.abs(r.gpu.accuracy - r.wasm.accuracy), `webgpu ${r.gpu.accuracy}% vs wasm ${r.wasm.accuracy}%`).toBeLessThanOrEqual(0.5);
    await page.close();
  }, 300_000);

  it('fit trains the MNIST MLP on WebGPU in the page to the accuracy fit reaches on WASM, with callbacks and the dashboard', async () => {
    const digits = mnistDigits();
    const page = await pageOf(withGpu);
    const r = await page.evaluate(async (d: typeof digits) => {
      const kiln = (globalThis as any).kiln;
      const train = async (name: string) => {
        await kiln.setBackend(name);
        const pixels = (v: number[], n: number) => kiln.tensor(Float32Array.from(v, (p) => p / 255), [n, 784]);
        const data = { x: pixels(d.train, d.trainLabels.length), y: kiln.tensor(Int32Array.from(d.trainLabels)) };
        const test = { x: pixels(d.test, d.testLabels.length), y: kiln.tensor(Int32Array.from(d.testLabels)) };
        const model = new kiln.nn.Sequential(new kiln.nn.Linear(784, 64, { seed: 1 }), new kiln.nn.ReLU(), new kiln.nn.Linear(64, 10, { seed: 2 }));
        const optimizer = new kiln.optim.Adam(model.parameters(), { lr: 2e-3 });
        const batchLosses: number[] = [];
        const epochEnds: number[] = [];
        let steps = 0;
        // The dashboard runs after this callback: at epoch 4's end it has drawn epochs 1-3.
        const reader = { onBatchEnd: (_b: number, logs: any) => void batchLosses.push(logs.loss), onEpochEnd: (epoch: number) => void epochEnds.push(epoch) };
        const history = await kiln.train.fit(model, data, {
          epochs: 4, batchSize: 100, shuffle: true, seed: 5, loss: (o: any, t: any) => kiln.crossEntropy(o, t), optimizer,
          metrics: ['accuracy'], validationData: test, verbose: 0, callbacks: [reader], dashboard: { title: `fit on ${name}` },
          onStep: () => void steps++,
        });
        const onDevice = model.parameters().every((p: any) => p.device === (name === 'gpu' ? 'gpu' : 'cpu'));
        const dash = document.querySelector('.kiln-dash-status')?.textContent ?? '';
        document.querySelectorAll('.kiln-dash').forEach((e) => e.remove());
        kiln.dispose([data.x, data.y, test.x, test.y]);
        model.dispose();
        optimizer.dispose();
        return { epochs: history.epochs, batchLosses, epochEnds, steps, onDevice, dash };
      };
      return { wasm: await train('wasm'), gpu: await train('gpu') };
    }, digits);
    const last = (h: any) => h.epochs[h.epochs.length - 1];
    console.log(`[webgpu] fit: MNIST MLP (${digits.trainLabels.length} digits, 4 epochs) val accuracy wasm ${last(r.wasm).valAccuracy}, webgpu ${last(r.gpu).valAccuracy}`);
    expect(r.gpu.onDevice).toBe(true);
    expect(r.gpu.epochs.map((e: any) => e.epoch)).toEqual([1, 2, 3, 4]);
    expect(r.gpu.epochEnds).toEqual([1, 2, 3, 4]);
    expect(r.gpu.steps).toBe(80);
    expect(r.gpu.batchLosses).toHaveLength(80);
    expect(r.gpu.batchLosses.every((l: number) => Number.isFinite(l))).toBe(true);
    expect(r.gpu.dash).toMatch(/finished; epoch 4 done/);
    // Per-step losses and epoch logs follow WASM's from the same seeds (float32 on different
    // kernels: the same trajectory to a few decimals).
    for (let i = 0; i < 80; i++) expect(r.gpu.batchLosses[i]).toBeCloseTo(r.wasm.batchLosses[i], 2);
    for (const key of ['loss', 'accuracy', 'valLoss', 'valAccuracy']) {
      r.gpu.epochs.forEach((e: any, i: number) => expect(e[key], `${key} of epoch ${i + 1}`).toBeCloseTo(r.wasm.epochs[i][key], 2));
    }
    expect(last(r.wasm).valAccuracy).toBeGreaterThan(0.8);
    expect(Math.abs(last(r.gpu).valAccuracy - last(r.wasm).valAccuracy)).toBeLessThanOrEqual(0.005);
    await page.close();
  }, 600_000);

  it('dataSync of a GPU tensor says to await data(); a bad index is reported by the next read', async () => {
    const page = await pageOf(withGpu);
    const r = await page.evaluate(async () => {
      const kiln = (globalThis as any).kiln;
      await kiln.setBackend('gpu');
      const x = kiln.ones([3, 2]);
      let sync = '';
      try {
        x.dataSync();
      } catch (e) {
        sync = (e as Error).message;
      }
      const g = kiln.gather(x, kiln.tensor(Int32Array.from([0, 7])));
      let deferred = '';
      try {
        await g.data();
      } catch (e) {
        deferred = (e as Error).message;
      }
      // The device is still usable after the reported error.
      const after = Array.from(await x.add(1).data());
      // Two bad indices whose reads are in flight at once: each read names its own op.
      kiln.gather(x, kiln.tensor(Int32Array.from([0, 9])));
      const first = kiln.synchronize();
      kiln.oneHot(kiln.tensor(Int32Array.from([1, 5])), 3);
      const second = kiln.synchronize();
      const overlapping = (await Promise.allSettled([first, second])).map((o) => (o.status === 'rejected' ? (o.reason as Error).message : 'no error'));
      return { sync, deferred, after, overlapping };
    });
    expect(r.sync).toMatch(/await t\.data\(\)/);
    expect(r.deferred).toMatch(/gather/);
    expect(r.deferred).toMatch(/7/);
    expect(r.after).toEqual([2, 2, 2, 2, 2, 2]);
    expect(r.overlapping[0]).toMatch(/gather.*\b9\b/);
    expect(r.overlapping[0]).not.toMatch(/oneHot/);
    expect(r.overlapping[1]).toMatch(/oneHot.*\b5\b/);
    await page.close();
  }, 120_000);

  it('clipNorm optimizers step on WebGPU without a read: the step has norm clipNorm (SGD), and Adam/RMSProp follow WASM', async () => {
    const page = await pageOf(withGpu);
    const r = await page.evaluate(async () => {
      const kiln = (globalThis as any).kiln;
      const run = async (name: string) => {
        await kiln.setBackend(name);
        const x = kiln.randn([32, 6], { seed: 21 });
        const y = kiln.tensor(Int32Array.from({ length: 32 }, (_, i) => i % 3));
        const out: Record<string, { losses: number[]; reads: number; moved?: number }> = {};
        const makers: Array<[string, (p: unknown[]) => any]> = [
          ['sgd', (p) => new kiln.optim.SGD(p, { lr: 1, clipNorm: 0.05 })],
          ['adam', (p) => new kiln.optim.Adam(p, { lr: 0.01, clipNorm: 0.3, weightDecay: 0.01 })],
          ['rmsprop', (p) => new kiln.optim.RMSProp(p, { lr: 0.01, clipNorm: 0.2 })],
        ];
        for (const [kind, make] of makers) {
          const model = new kiln.nn.Sequential(new kiln.nn.Linear(6, 16, { seed: 1 }), new kiln.nn.Tanh(), new kiln.nn.Linear(16, 3, { seed: 2 }));
          const opt = make(model.parameters());
          const losses: number[] = [];
          let reads = 0;
          let moved: number | undefined;
          for (let step = 0; step < 4; step++) {
            const before = name === 'gpu' ? kiln.gpuInfo().readbacks : 0;
            const old = model.parameters().map((p: any) => p.mul(1));
            const loss = kiln.tidy(() => {
              const l = kiln.crossEntropy(model.forward(x), y);
              opt.zeroGrad();
              l.backward();
              opt.step();
              return l;
            });
            if (name === 'gpu') reads += kiln.gpuInfo().readbacks - before;
            // The length of the whole update: lr · clipNorm for plain SGD when the clip binds.
            const squares = kiln.tidy(() => kiln.stack(model.parameters().map((p: any, i: number) => p.sub(old[i]).square().sum())).sum());
            if (kind === 'sgd' && step === 0) moved = Math.sqrt((await squares.data())[0]);
            kiln.dispose([...old, squares]);
            losses.push((await loss.data())[0]);
            loss.dispose();
          }
          out[kind] = { losses, reads, moved };
          model.dispose();
          opt.dispose();
        }
        kiln.dispose([x, y]);
        return out;
      };
      return { wasm: await run('wasm'), gpu: await run('gpu') };
    });
    for (const kind of ['sgd', 'adam', 'rmsprop']) {
      expect(r.gpu[kind].reads, `${kind}: reads during its steps`).toBe(0);
      r.gpu[kind].losses.forEach((l: number, i: number) => expect(l, `${kind} step ${i}`).toBeCloseTo(r.wasm[kind].losses[i], 4));
    }
    expect(r.gpu.sgd.moved).toBeCloseTo(0.05, 5);
    expect(r.wasm.sgd.moved).toBeCloseTo(0.05, 5);
    await page.close();
  }, 180_000);

  it("fit's manualOptimization on WebGPU: an update with an infinite gradient is undone on the device (Adam's moments and clock too) and skipped", async () => {
    const page = await pageOf(withGpu);
    const r = await page.evaluate(async () => {
      const kiln = (globalThis as any).kiln;
      const run = async (name: string) => {
        await kiln.setBackend(name);
        const batches = [1, 2, 3].map((s) => ({ x: kiln.randn([16, 4], { seed: 30 + s }), y: kiln.tensor(Int32Array.from({ length: 16 }, (_, i) => (i + s) % 2)) }));
        const net = () => new kiln.nn.Sequential(new kiln.nn.Linear(4, 8, { seed: 5 }), new kiln.nn.Tanh(), new kiln.nn.Linear(8, 2, { seed: 6 }));
        // Manual steps over batches 1-3, batch 2's gradient made infinite with a finite loss:
        // sqrt(w - w) is 0, its derivative 1/(2·0) is infinite.
        const manual = net();
        const opt = new kiln.optim.Adam(manual.parameters(), { lr: 0.05 });
        const history = await kiln.train.fit(manual, batches, {
          epochs: 1, optimizer: opt, manualOptimization: true, onNonFiniteGradients: 'skip', verbose: 0,
          trainStep: ({ x, y }: any, ctx: any) => {
            const w = ctx.model.parameters()[0];
            let l = kiln.crossEntropy(ctx.model.forward(x), y);
            if (ctx.batch === 2) l = l.add(kiln.sqrt(w.sub(w.detach()).sum()));
            l.backward();
            ctx.optimizerStep();
            return l;
          },
        });
        // The same model trained on batches 1 and 3 only, automatically.
        const plain = net();
        const optPlain = new kiln.optim.Adam(plain.parameters(), { lr: 0.05 });
        await kiln.train.fit(plain, [batches[0], batches[2]], { epochs: 1, optimizer: optPlain, loss: kiln.crossEntropy, verbose: 0 });
        const read = async (m: any) => Promise.all(m.parameters().map(async (p: any) => Array.from(await p.data()) as number[]));
        const result = { skipped: history.epochs[0].skippedSteps, steps: opt.stepCount, manual: await read(manual), plain: await read(plain) };
        [manual, plain, opt, optPlain].forEach((o) => o.dispose());
        for (const b of batches) kiln.dispose([b.x, b.y]);
        return result;
      };
      return { wasm: await run('wasm'), gpu: await run('gpu') };
    });
    for (const name of ['wasm', 'gpu']) {
      const got = r[name];
      expect(got.skipped, name).toBe(1);
      expect(got.steps, name).toBe(2);
      const worst = Math.max(...got.manual.flatMap((p: number[], i: number) => p.map((v, j) => Math.abs(v - got.plain[i][j]))));
      expect(worst, `${name}: manual with batch 2 undone vs trained on batches 1 and 3`).toBeLessThan(1e-6);
    }
    await page.close();
  }, 180_000);

  it('the draw-a-digit demo picks WebGPU, says so, and predicts as the native backend does', async () => {
    const page = await withGpu.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e: Error) => errors.push(e.message));
    await page.goto(`${url}examples/web/?model=/model/`);
    await page.waitForFunction(() => (window as any).kilnDemo?.ready === true || (window as any).kilnDemo?.error, null, { timeout: 60_000 });
    expect(await page.evaluate(() => (window as any).kilnDemo.error ?? null)).toBeNull();
    expect(await page.evaluate(() => (window as any).kilnDemo.backend)).toBe('gpu');
    const status = (await page.locator('#status').textContent()) ?? '';
    expect(status).toMatch(/on the gpu backend \(WebGPU, adapter /);
    expect(status).toMatch(ADAPTER_NAME);
    const drawn = await page.evaluate(async () => {
      const ctx = (document.getElementById('pad') as HTMLCanvasElement).getContext('2d')!;
      ctx.fillStyle = '#fff';
      ctx.fillRect(120, 40, 40, 200);
      return (window as any).kilnDemo.predict();
    });
    expect(await page.locator('#time').textContent()).toMatch(/WebGPU/);
    const native = Array.from(kiln.tidy(() => kiln.softmax(demoModel.forward(kiln.tensor(drawn.input, [1, 784])), -1).dataSync()));
    drawn.probs.forEach((p: number, d: number) => expect(p).toBeCloseTo(native[d]!, 4));
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);

  it('without WebGPU, setBackend(gpu) warns why and WASM stays', async () => {
    const page = await pageOf(withoutGpu);
    const r = await page.evaluate(async () => {
      const kiln = (globalThis as any).kiln;
      const used = await kiln.setBackend('gpu');
      return { used, backend: kiln.getBackend(), sum: Array.from(kiln.tensor([1, 2, 3]).sum().dataSync()) };
    });
    expect(r.used).toBe('wasm');
    expect(r.backend).toBe('wasm');
    expect(r.sum).toEqual([6]);
    expect(page.logs.join('\n')).toMatch(/kiln: setBackend\('gpu'\): .*staying on WASM/);
    await page.close();
  }, 120_000);
});
