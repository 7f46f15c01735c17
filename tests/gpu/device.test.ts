/**
 * The GPU backend as a device: gpuInfo, moving tensors and models, async reads, readbacks
 * counted during training, and the error on a machine without an adapter. The op and gradient
 * suites run on the GPU through forEachBackend (tests/backends.ts); this file covers what only
 * the GPU has.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as kiln from '../../ts/index.js';

/** '' when the machine has a GPU adapter (lavapipe counts), else why not. */
function gpuOrSkipReason(): string {
  try {
    kiln.gpuInfo();
    return '';
  } catch (e) {
    return (e as Error).message;
  }
}

const reason = gpuOrSkipReason();
const onGpu = reason === '' ? describe : describe.skip;

/** A two-layer MLP and its Adam, on the native backend, with fixed weights. */
function mlp() {
  kiln.setBackend('native');
  const model = new kiln.nn.Sequential(new kiln.nn.Linear(20, 32, { seed: 1 }), new kiln.nn.ReLU(), new kiln.nn.Linear(32, 10, { seed: 2 }));
  const opt = new kiln.optim.Adam(model.parameters(), { lr: 0.01 });
  return { model, opt };
}

/** One training step on the active backend; the loss stays a tensor (nothing is read). */
function trainStep(model: kiln.nn.Sequential, opt: kiln.optim.Optimizer, x: kiln.Tensor, y: kiln.Tensor): kiln.Tensor {
  opt.zeroGrad();
  const loss = kiln.tidy(() => {
    const l = kiln.mse(model.forward(x), y);
    l.backward();
    return l;
  });
  opt.step();
  return loss;
}

onGpu('[gpu] device', () => {
  it('gpuInfo names the adapter and its limits', () => {
    const info = kiln.gpuInfo();
    expect(info.adapter.length).toBeGreaterThan(0);
    expect(['Vulkan', 'Metal', 'Dx12']).toContain(info.backend);
    expect(info.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 1024 * 1024);
    expect(typeof info.software).toBe('boolean');
    expect(info.readbacks).toBeGreaterThanOrEqual(0);
    expect(info.pool.liveBuffers).toBeGreaterThanOrEqual(0);
    expect(info.pool.created).toBeGreaterThanOrEqual(info.pool.liveBuffers);
  });

  it('setBackend(gpu) makes tensors on the device; to() moves them both ways, differentiably', async () => {
    kiln.setBackend('gpu');
    const a = kiln.tensor([1, -2, 3]);
    expect(a.device).toBe('gpu');
    expect(a.to('gpu')).toBe(a);
    const cpu = a.to('cpu');
    expect(cpu.device).toBe('cpu');
    expect(Array.from(cpu.dataSync())).toEqual([1, -2, 3]);
    // A CPU leaf, a loss computed on the GPU: the gradient comes back to the CPU leaf.
    kiln.setBackend('native');
    const leaf = kiln.tensor([0.5, -1, 2]).setRequiresGrad(true);
    const onDevice = leaf.to('gpu');
    kiln.setBackend('gpu');
    const loss = onDevice.mul(onDevice).sum();
    loss.backward();
    expect(Array.from(leaf.grad!.dataSync())).toEqual([1, -2, 4]);
    expect(Array.from(await loss.data())).toEqual([5.25]);
    for (const t of [a, cpu, leaf, onDevice, loss]) t.dispose();
  });

  it('mixing a CPU tensor into a GPU op is an error naming the op and the fix', () => {
    kiln.setBackend('native');
    const cpu = kiln.tensor([1, 2, 3]);
    kiln.setBackend('gpu');
    const gpu = kiln.tensor([1, 2, 3]);
    expect(() => kiln.add(gpu, cpu)).toThrow(/add: mixes a CPU tensor \(float32 \[3\]\) with tensors on the gpu device: move it first with \.to\('gpu'\)/);
    cpu.dispose();
    gpu.dispose();
  });

  it('a training step reads nothing back until the loss is read; model.to(gpu) trains like the CPU', async () => {
    kiln.setBackend('native');
    const x = kiln.randn([16, 20], { seed: 3 });
    const y = kiln.tensor(Array.from({ length: 160 }, (_, i) => (i % 10 === Math.floor(i / 10) % 10 ? 1 : 0)), [16, 10]);
    const cpu = mlp();
    const gpu = mlp();
    gpu.model.to('gpu');
    const [xg, yg] = [x.to('gpu'), y.to('gpu')];
    const cpuLosses: number[] = [];
    const gpuLosses: number[] = [];
    // PyTorch's way: the model and the data moved, the default backend still active.
    for (let step = 0; step < 5; step++) {
      const lc = trainStep(cpu.model, cpu.opt, x, y);
      cpuLosses.push(lc.dataSync()[0]);
      lc.dispose();
      const before = kiln.gpuInfo().readbacks;
      const lg = trainStep(gpu.model, gpu.opt, xg, yg);
      expect(kiln.gpuInfo().readbacks - before).toBe(0);
      gpuLosses.push((await lg.data())[0]);
      expect(kiln.gpuInfo().readbacks - before).toBe(1);
      expect(lg.device).toBe('gpu');
      lg.dispose();
    }
    expect(cpuLosses[4]).toBeLessThan(cpuLosses[0]);
    for (let i = 0; i < 5; i++) expect(gpuLosses[i]).toBeCloseTo(cpuLosses[i], 4);
    // The parameters (and the optimizer's state) live on the GPU; moving back gives the CPU's weights.
    expect(gpu.model.parameters().every((p) => p.device === 'gpu')).toBe(true);
    gpu.model.to('cpu');
    const [wc, wg] = [cpu.model.parameters()[0].dataSync(), gpu.model.parameters()[0].dataSync()];
    for (let i = 0; i < wc.length; i++) expect(wg[i]).toBeCloseTo(wc[i], 4);
    for (const t of [x, y, xg, yg]) t.dispose();
    for (const m of [cpu, gpu]) {
      m.model.dispose();
      m.opt.dispose();
    }
  });

  it('the MNIST MLP trains on the GPU to the accuracy it reaches on the CPU, reading back only the losses', () => {
    const TRAIN = 4000;
    const TEST = 2000;
    const mnist = kiln.data.loadMnist();
    kiln.setBackend('native');
    const pixels = (images: Uint8Array, n: number) => kiln.tensor(Float32Array.from(images.subarray(0, n * 784), (v) => v / 255), [n, 784]);
    const xTrain = pixels(mnist.trainImages, TRAIN);
    const yTrain = kiln.tensor(Int32Array.from(mnist.trainLabels.subarray(0, TRAIN)));
    const xTest = pixels(mnist.testImages, TEST);
    const labels = mnist.testLabels.subarray(0, TEST);
    const train = (device: 'cpu' | 'gpu') => {
      const model = new kiln.nn.Sequential(new kiln.nn.Linear(784, 128, { seed: 1 }), new kiln.nn.ReLU(), new kiln.nn.Linear(128, 10, { seed: 2 })).to(device);
      const optimizer = new kiln.optim.Adam(model.parameters(), { lr: 2e-3 });
      const [x, y, xt] = [xTrain.to(device), yTrain.to(device), xTest.to(device)];
      const readsBefore = kiln.gpuInfo().readbacks;
      const losses: number[] = [];
      const created: number[] = []; // GPU buffers ever created, after each epoch
      for (let epoch = 0; epoch < 5; epoch++) {
        for (let start = 0; start < TRAIN; start += 100) {
          const loss = kiln.tidy(() => {
            const l = kiln.crossEntropy(model.forward(x.slice([start, 0], [100, -1])), y.slice([start], [100]));
            optimizer.zeroGrad();
            l.backward();
            optimizer.step();
            return l;
          });
          // Read one loss per epoch, as a progress line would.
          if (start === 0) losses.push(loss.dataSync()[0]);
          loss.dispose();
        }
        created.push(kiln.gpuInfo().pool.created);
      }
      const reads = kiln.gpuInfo().readbacks - readsBefore;
      const predicted = kiln.noGrad(() => kiln.tidy(() => model.forward(xt).argmax(-1).dataSync()));
      const accuracy = (100 * predicted.reduce((hits, p, i) => hits + (p === labels[i] ? 1 : 0), 0)) / TEST;
      expect(model.parameters().every((p) => p.device === device)).toBe(true);
      model.dispose();
      optimizer.dispose();
      if (device === 'gpu') kiln.dispose([x, y, xt]);
      return { accuracy, losses, reads, created };
    };
    const cpu = train('cpu');
    const gpu = train('gpu');
    console.log(`[gpu] MNIST MLP (${TRAIN} digits, 5 epochs): test accuracy cpu ${cpu.accuracy}%, gpu ${gpu.accuracy}% on '${kiln.gpuInfo().adapter}'`);
    expect(cpu.reads).toBe(0);
    expect(gpu.reads, 'one readback per loss read (5); the training steps read nothing').toBe(5);
    expect(gpu.losses[4]).toBeLessThan(gpu.losses[0] / 3);
    // The buffer pool reuses freed buffers: after the first epoch, training creates none.
    expect(gpu.created.slice(1), `buffers created after each epoch: ${gpu.created}`).toEqual(gpu.created.slice(1).map(() => gpu.created[0]));
    expect(gpu.accuracy).toBeGreaterThan(85);
    expect(Math.abs(gpu.accuracy - cpu.accuracy), `gpu ${gpu.accuracy}% vs cpu ${cpu.accuracy}%`).toBeLessThanOrEqual(0.5);
    kiln.dispose([xTrain, yTrain, xTest]);
  }, 300_000);

  it('kiln.quantize refuses a model on the GPU, saying to move it to the CPU', () => {
    kiln.setBackend('native');
    const model = new kiln.nn.Sequential(new kiln.nn.Linear(4, 3, { seed: 1 })).to('gpu');
    expect(() => kiln.quantize(model, { bits: 8 })).toThrow(/quantize: quantized layers run on the CPU backends .* call model\.to\('cpu'\) first/);
    model.to('cpu');
    expect(kiln.quantize(model, { bits: 8 }).forward(kiln.ones([1, 4])).shape).toEqual([1, 3]);
    model.dispose();
  });
});

describe('gpu without an adapter', () => {
  it('setBackend(gpu) says there is no adapter and how to install a Vulkan driver', () => {
    // DX12 does not exist on Linux (and Metal not off macOS): the addon finds no adapter.
    const backend = process.platform === 'win32' ? 'metal' : 'dx12';
    const script = `import('${new URL('../../dist/index.js', import.meta.url).href}').then((k) => { try { k.setBackend('gpu'); console.log('opened'); } catch (e) { console.log(e.message); } })`;
    const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, WGPU_BACKEND: backend }, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/no GPU adapter found/);
    expect(r.stdout).toMatch(/mesa-vulkan-drivers/);
  });
});
