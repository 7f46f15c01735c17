/**
 * The small conveniences of issue 17: crossEntropy on logits [..., classes] equals the same loss
 * on the flattened [rows, classes] (values and gradients); a VAE in eval mode can decode the
 * posterior mean; TensorDataset without labels feeds an unsupervised trainStep; every optimizer
 * constructs with no options (PyTorch's defaults, checked against explicit ones step for step).
 */
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import * as kiln from '../../ts/index.js';
import type { Tensor } from '../../ts/index.js';
import { data, nn, optim } from '../../ts/index.js';
import { forEachBackend } from '../backends.js';
import { assertClose, randND, read } from '../helpers.js';

forEachBackend(() => {
  beforeEach(() => {
    vi.spyOn(console, 'log').mockImplementation(() => {});
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('crossEntropy takes logits [batch, time, classes] with targets [batch, time]: values and gradients equal the flattened form', async () => {
    const values = randND([2, 3, 5], 4);
    const ids = kiln.tensor([0, 4, 2, 1, 3, 3], [2, 3], 'int32');
    const seq = kiln.tensor(values.data, [2, 3, 5]).setRequiresGrad();
    const flat = kiln.tensor(values.data, [6, 5]).setRequiresGrad();
    for (const reduction of ['mean', 'sum'] as const) {
      const a = kiln.crossEntropy(seq, ids, { reduction });
      const b = kiln.crossEntropy(flat, ids.reshape([6]), { reduction });
      assertClose(await read(a), await read(b), { atol: 1e-6 });
      a.backward();
      b.backward();
      assertClose(await read(seq.grad!), await read(flat.grad!), { atol: 1e-6 });
      seq.zeroGrad();
      flat.zeroGrad();
    }
    const none = kiln.crossEntropy(seq, ids, { reduction: 'none' });
    expect([...none.shape]).toEqual([2, 3]);
    assertClose(await read(none), await read(kiln.crossEntropy(flat, ids.reshape([6]), { reduction: 'none' })), { atol: 1e-6 });
    expect(() => kiln.crossEntropy(seq, kiln.zeros([2, 5], 'int32'))).toThrow(/crossEntropy: logits float32 \[2, 3, 5\] need targets of shape \[2, 3\].*int32 \[2, 5\]/);
    kiln.dispose([seq, flat, ids, none]);
  });

  it("nn.VAE with evalLatent 'mean' decodes the posterior mean in eval mode (deterministic), samples in training mode; the ELBO always samples", async () => {
    const encoder = new nn.Linear(6, 4, { seed: 1 });
    const decoder = new nn.Linear(2, 6, { seed: 2 });
    const vae = new nn.VAE(encoder, decoder, 2, { evalLatent: 'mean' });
    const x = kiln.tensor(randND([3, 6], 5).data, [3, 6]);
    vae.eval();
    const out = kiln.noGrad(() => vae.forward(x));
    assertClose(await read(out.z), await read(out.mu), { atol: 0 });
    assertClose(await read(out.logits), await read(kiln.noGrad(() => decoder.forward(out.mu))), { atol: 1e-6 });
    const elbo1 = await read(kiln.noGrad(() => vae.negativeElbo(x).loss));
    const elbo2 = await read(kiln.noGrad(() => vae.negativeElbo(x).loss));
    expect(elbo1).not.toEqual(elbo2);
    vae.train();
    const sampled = kiln.noGrad(() => vae.forward(x));
    expect(await read(sampled.z)).not.toEqual(await read(sampled.mu));
    // the default keeps sampling in eval mode
    const plain = new nn.VAE(encoder, decoder, 2).eval();
    const p = kiln.noGrad(() => plain.forward(x));
    expect(await read(p.z)).not.toEqual(await read(p.mu));
    expect(() => new nn.VAE(encoder, decoder, 2, { evalLatent: 'median' as never })).toThrow(/evalLatent must be 'sample' or 'mean'/);
    kiln.dispose([x]);
    vae.dispose();
  });

  it('TensorDataset without labels gives batches { x } that an unsupervised trainStep learns from (an autoencoder)', async () => {
    const n = 64;
    const features = Float32Array.from(randND([n, 4], 6).data);
    const ds = new data.TensorDataset(features, [4]);
    expect(ds.labels).toBeNull();
    const loader = new data.DataLoader(ds, { batchSize: 16, shuffle: true, seed: 1 });
    for await (const b of loader) {
      expect(Object.keys(b)).toEqual(['x']);
      kiln.dispose(b.x);
    }
    const model = new nn.Sequential(new nn.Linear(4, 8, { seed: 3 }), new nn.Tanh(), new nn.Linear(8, 4, { seed: 4 }));
    const opt = new optim.Adam(model.parameters(), { lr: 0.02 });
    const history = await kiln.fit(model, loader, { epochs: 30, optimizer: opt, verbose: 0, trainStep: ({ x }: { x: Tensor }, ctx) => kiln.mse(ctx.model.forward(x), x) });
    expect(history.epochs[29].loss).toBeLessThan(history.epochs[0].loss * 0.3);
    expect(() => new data.TensorDataset(features, [4], [1, 2] as never)).toThrow(/labels must be .* or omitted/);
    opt.dispose();
    model.dispose();
  });

  it('every optimizer constructs with no options, with PyTorch’s defaults (the docs/gpu.md example)', async () => {
    const cases: Array<[string, (p: Tensor[]) => optim.Optimizer, (p: Tensor[]) => optim.Optimizer]> = [
      ['SGD', (p) => new optim.SGD(p), (p) => new optim.SGD(p, { lr: 1e-3, momentum: 0 })],
      ['Adam', (p) => new optim.Adam(p), (p) => new optim.Adam(p, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 })],
      ['AdamW', (p) => new optim.AdamW(p), (p) => new optim.AdamW(p, { lr: 1e-3, weightDecay: 0.01 })],
      ['RMSProp', (p) => new optim.RMSProp(p), (p) => new optim.RMSProp(p, { lr: 1e-2, alpha: 0.99, eps: 1e-8 })],
      ['AdaGrad', (p) => new optim.AdaGrad(p), (p) => new optim.AdaGrad(p, { lr: 1e-2, eps: 1e-10 })],
    ];
    for (const [name, bare, explicit] of cases) {
      const models = [new nn.Linear(3, 2, { seed: 9 }), new nn.Linear(3, 2, { seed: 9 })];
      const opts = [bare(models[0].parameters()), explicit(models[1].parameters())];
      const x = kiln.tensor(randND([4, 3], 7).data, [4, 3]);
      for (let s = 0; s < 3; s++) {
        models.forEach((m, i) => {
          opts[i].zeroGrad();
          kiln.tidy(() => m.forward(x).square().mean().backward());
          opts[i].step();
        });
      }
      expect(opts[0].lr, name).toBe(opts[1].lr);
      assertClose(await read(models[0].weight), await read(models[1].weight), { atol: 0 });
      expect(await read(models[0].weight), `${name} moved the weights`).not.toEqual(await read(new nn.Linear(3, 2, { seed: 9 }).weight));
      opts.forEach((o) => o.dispose());
      models.forEach((m) => m.dispose());
      x.dispose();
    }
    expect(() => new optim.Adam(kiln.zeros([2]) as never)).toThrow(/Adam: params must be an array/);
  });
});
