// The screenshots of docs/training.md: trains a small MNIST MLP for 3 epochs with the TensorBoard
// callback and a kept-open Dashboard (fed per batch by fit's onBatchEnd, its "samples" the first
// layer's weights as 28x28 images), photographs the dashboard in headless Chromium, then runs
// the `tensorboard` server from Kiln's Python environment on 127.0.0.1 over the run's event files
// and photographs its scalars page. Everything stays on loopback.
//
//   node scripts/training-screenshots.mjs          # docs/img/dashboard.png, docs/img/tensorboard-scalars.png
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHROMIUM, CHROMIUM_ARGS, ensureChromium } from './chromium.mjs';
import { ensurePython } from './python.mjs';
import { ROOT, step } from './lib.mjs';

const kiln = await import(join(ROOT, 'dist', 'index.js'));
const { chromium } = await import('playwright-core');
const { data, nn, optim, train } = kiln;
ensureChromium();
const python = ensurePython(['tensorboard']);
const logDir = mkdtempSync(join(tmpdir(), 'kiln-tb-shots-'));

step('training a small MNIST MLP for 3 epochs with TensorBoard and the dashboard');
const mnist = data.loadMnist();
const n = 12000;
const x = data.scale(mnist.trainImages.subarray(0, n * 784), 1 / 255);
const y = mnist.trainLabels.subarray(0, n);
const trainSet = new data.TensorDataset(x.subarray(0, 10000 * 784), [784], y.subarray(0, 10000));
const valSet = new data.TensorDataset(x.subarray(10000 * 784), [784], y.subarray(10000));
const first = new nn.Linear(784, 64, { seed: 1 });
const model = new nn.Sequential(first, new nn.ReLU(), new nn.Linear(64, 10, { seed: 2 }));
const optimizer = new optim.Adam(model.parameters(), { lr: 2e-3 });
const schedule = new optim.StepDecay(optimizer, 1, 0.5);
// The first layer's 64 weight vectors as images, each scaled to [0, 1].
const weightImages = () => {
  const w = first.weight.dataSync();
  const out = new Float32Array(w.length);
  for (let r = 0; r < 64; r++) {
    const row = w.subarray(r * 784, (r + 1) * 784);
    const [lo, hi] = [Math.min(...row), Math.max(...row)];
    for (let i = 0; i < 784; i++) out[r * 784 + i] = (row[i] - lo) / (hi - lo + 1e-12);
  }
  return { data: out, shape: [64, 28, 28] };
};
const dashboard = new train.Dashboard({ title: 'MNIST MLP 784-64-10', keepOpen: true, samples: weightImages, sampleGrid: { cols: 8, scale: 1 } });
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
try {
  await kiln.fit(model, new data.DataLoader(trainSet, { batchSize: 64, shuffle: true, seed: 1 }), {
    epochs: 3,
    loss: (out, t) => kiln.crossEntropy(out, t),
    optimizer,
    metrics: ['accuracy'],
    validationData: new data.DataLoader(valSet, { batchSize: 500 }),
    callbacks: [new train.LRScheduler(schedule), new train.TensorBoard(logDir, { samples: weightImages, sampleGrid: { cols: 8, scale: 2 } }), dashboard],
  });
  const page = await browser.newPage({ viewport: { width: 1220, height: 880 } });
  await page.goto(dashboard.url);
  await page.waitForFunction(() => document.querySelector('.kiln-dash-status')?.textContent?.startsWith('finished'), null, { timeout: 30_000 });
  await page.waitForTimeout(500);
  await page.screenshot({ path: join(ROOT, 'docs', 'img', 'dashboard.png'), fullPage: true });
  step('docs/img/dashboard.png');
  await dashboard.close();

  step('tensorboard on 127.0.0.1 over the run');
  const port = await new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  const tb = spawn(python, ['-m', 'tensorboard.main', '--logdir', logDir, '--host', '127.0.0.1', '--port', String(port)], { stdio: 'ignore' });
  try {
    const url = `http://127.0.0.1:${port}/`;
    for (let i = 0; i < 120; i++) {
      if (await fetch(url).then((r) => r.ok, () => false)) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const tbPage = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await tbPage.goto(`${url}#scalars`);
    await tbPage.getByText('epoch/loss').first().waitFor({ timeout: 60_000 });
    await tbPage.waitForTimeout(5000);
    await tbPage.screenshot({ path: join(ROOT, 'docs', 'img', 'tensorboard-scalars.png') });
    step('docs/img/tensorboard-scalars.png');
  } finally {
    tb.kill();
  }
} finally {
  await browser.close();
  await dashboard.close();
  rmSync(logDir, { recursive: true, force: true });
}
