/**
 * MultiHeadAttention, the positional encodings and the Transformer layers: MHA against the same
 * computation written from its Linear weights and primitive ops, causality and padding as
 * observable properties, finite-difference gradient checks, save/load through kiln.io, bad input.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import * as nn from '../../ts/nn/index.js';
import type { Tensor } from '../../ts/index.js';
import { forEachBackend } from '../backends.js';
import { assertClose, expectThrows, randND, read, T, expectEveryTestToFreeItsTensors } from '../helpers.js';
import { gradCheck } from './gradcheck.js';

/** y = x·Wᵀ + b, from a Linear's parameters. */
function linear(x: Tensor, l: nn.Linear): Tensor {
  const y = x.matmul(l.weight, false, true);
  return l.bias === null ? y : y.add(l.bias);
}

/** MultiHeadAttention written out: projections, heads, softmax(QKᵀ/√d + masks)V, merge, output projection. */
function manualMha(m: nn.MultiHeadAttention, query: Tensor, key: Tensor, value: Tensor, causal: boolean, padding?: Tensor): Tensor {
  const [batch, tq] = query.shape;
  const tk = key.shape[1];
  const heads = (x: Tensor, t: number) => x.reshape([batch, t, m.numHeads, m.headDim]).transpose([0, 2, 1, 3]);
  const q = heads(linear(query, m.qProj), tq);
  const k = heads(linear(key, m.kProj), tk);
  const v = heads(linear(value, m.vProj), tk);
  let s = q.matmul(k, false, true).div(Math.sqrt(m.headDim));
  if (padding !== undefined) s = s.add(kiln.where(padding, -Infinity, 0).reshape([batch, 1, 1, tk]));
  if (causal) {
    const visible = kiln.arange(0, tk).reshape([1, tk]).lessEqual(kiln.arange(0, tq).reshape([tq, 1]).add(tk - tq));
    s = kiln.where(visible, s, -Infinity);
  }
  const o = s.softmax(-1).matmul(v).transpose([0, 2, 1, 3]).reshape([batch, tq, m.dModel]);
  return linear(o, m.outProj);
}

/** A small encoder-decoder used for gradient checks and save/load: one module, one input. */
class TinySeq2Seq extends nn.Module {
  readonly position = new nn.SinusoidalPositionalEncoding(8);
  readonly encoder: nn.TransformerEncoderLayer;
  readonly decoder: nn.TransformerDecoderLayer;
  constructor(readonly seed: number, dropout = 0) {
    super();
    this.encoder = new nn.TransformerEncoderLayer(8, 2, { dimFeedforward: 16, dropout, seed });
    this.decoder = new nn.TransformerDecoderLayer(8, 2, { dimFeedforward: 12, dropout, seed: seed + 1 });
  }
  /** x [B, T, 8] -> [B, T, 8]: the encoder reads x, the decoder reads x shifted by one and attends to the encoding. */
  forward(x: Tensor): Tensor {
    const memory = this.encoder.forward(this.position.forward(x));
    return this.decoder.forward(x.mul(0.5), memory, { causal: true });
  }
}

forEachBackend(() => {
  expectEveryTestToFreeItsTensors();

  describe('MultiHeadAttention', () => {
    it('equals the computation written from its weights: self-attention, causal and padded', async () => {
      const m = new nn.MultiHeadAttention(12, 3, { seed: 1 });
      const x = T(randND([2, 7, 12], 2));
      const padding = kiln.tensor(Uint8Array.from([0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1]), [2, 7], 'bool');
      for (const causal of [false, true]) {
        const [got, want] = kiln.tidy(() => [m.forward(x, x, x, { causal, keyPaddingMask: padding }), manualMha(m, x, x, x, causal, padding)]);
        assertClose(await read(got), await read(want), { atol: 1e-5, rtol: 1e-4 }, `causal=${causal}`);
        kiln.dispose([got, want]);
      }
      kiln.dispose([x, padding]);
      m.dispose();
    });

    it('cross-attention: keys and values of another length and width', async () => {
      const m = new nn.MultiHeadAttention(8, 2, { kDim: 5, vDim: 3, seed: 3, bias: false });
      expect(m.kProj.weight.shape).toEqual([8, 5]);
      expect(m.vProj.weight.shape).toEqual([8, 3]);
      expect(m.qProj.bias).toBeNull();
      const q = T(randND([2, 4, 8], 4));
      const k = T(randND([2, 9, 5], 5));
      const v = T(randND([2, 9, 3], 6));
      const [got, want] = kiln.tidy(() => [m.forward(q, k, v), manualMha(m, q, k, v, false)]);
      expect(got.shape).toEqual([2, 4, 8]);
      assertClose(await read(got), await read(want), { atol: 1e-5, rtol: 1e-4 }, 'cross-attention');
      kiln.dispose([q, k, v, got, want]);
      m.dispose();
    });

    it('gradients match finite differences (input and every projection)', async () => {
      const m = new nn.MultiHeadAttention(6, 2, { seed: 7 });
      const mask = kiln.tensor(Uint8Array.from([0, 0, 0, 1, 0, 0, 0, 0]), [2, 4], 'bool');
      const wrapped = new (class extends nn.Module {
        readonly mha = m;
        forward(x: Tensor): Tensor {
          return this.mha.forward(x, x, x, { causal: true, keyPaddingMask: mask });
        }
      })();
      await gradCheck(wrapped, randND([2, 4, 6], 8));
      mask.dispose();
      m.dispose();
    });

    it('dropout acts on the attention weights in training only', async () => {
      const m = new nn.MultiHeadAttention(8, 2, { dropout: 0.5, seed: 9 });
      const x = T(randND([1, 6, 8], 10));
      const [a, b] = kiln.tidy(() => [m.forward(x), m.forward(x)]);
      expect(await read(a)).not.toEqual(await read(b));
      m.eval();
      const [c, d] = kiln.tidy(() => [m.forward(x), m.forward(x)]);
      expect(await read(c)).toEqual(await read(d));
      kiln.dispose([x, a, b, c, d]);
      m.dispose();
    });

    it('rejects bad configurations and inputs with the shapes involved', () => {
      expectThrows(() => new nn.MultiHeadAttention(10, 3), 'MultiHeadAttention: dModel must be divisible by numHeads (10 / 3 is not whole)');
      expectThrows(() => new nn.MultiHeadAttention(8, 2, { dropout: 1 }), 'dropout must be in [0, 1)');
      const m = new nn.MultiHeadAttention(8, 2);
      kiln.tidy(() => {
        expectThrows(() => m.forward(kiln.zeros([2, 3, 6])), 'MultiHeadAttention(8, 2)', 'query', 'float32 [2, 3, 6]');
        expectThrows(() => m.forward(kiln.zeros([2, 3, 8]), kiln.zeros([1, 4, 8])), 'key', 'float32 [1, 4, 8]');
        expectThrows(() => m.forward(kiln.zeros([2, 3, 8]), kiln.zeros([2, 4, 8]), kiln.zeros([2, 5, 8])), 'same length');
        expectThrows(() => m.forward(kiln.zeros([2, 3, 8]), undefined, undefined, { keyPaddingMask: kiln.zeros([2, 4], 'bool') }), 'attention', 'keyPaddingMask');
      });
      m.dispose();
    });
  });

  describe('positional encodings', () => {
    it('SinusoidalPositionalEncoding adds sin/cos of p·10000^(−2i/d), from an offset', async () => {
      const pe = new nn.SinusoidalPositionalEncoding(5);
      const x = kiln.zeros([2, 3, 5]);
      const y = pe.forward(x, 4);
      const got = await read(y);
      for (let b = 0; b < 2; b++) {
        for (let p = 0; p < 3; p++) {
          for (let f = 0; f < 5; f++) {
            const angle = (p + 4) / 10000 ** ((2 * Math.floor(f / 2)) / 5);
            const want = f % 2 === 0 ? Math.sin(angle) : Math.cos(angle);
            expect(Math.abs(got[(b * 3 + p) * 5 + f] - want), `b${b} p${p} f${f}`).toBeLessThan(2e-5);
          }
        }
      }
      expect(pe.parameters()).toEqual([]);
      kiln.dispose([x, y]);
    });

    it('LearnedPositionalEmbedding adds its rows offset.. and learns them', async () => {
      const pe = new nn.LearnedPositionalEmbedding(6, 4, { seed: 1 });
      const table = await read(pe.embedding.weight);
      expect(Math.max(...table.map(Math.abs))).toBeLessThan(0.1); // N(0, 0.02²)
      const x = T(randND([2, 3, 4], 11));
      const y = kiln.tidy(() => pe.forward(x, 2));
      const [xs, ys] = [await read(x), await read(y)];
      ys.forEach((v, i) => expect(v).toBeCloseTo(xs[i] + table[(2 + (Math.floor(i / 4) % 3)) * 4 + (i % 4)], 6));
      expectThrows(() => pe.forward(x, 4), 'LearnedPositionalEmbedding(6, 4)', 'positions 4..6', 'maxLength 6');
      kiln.tidy(() => pe.forward(x.setRequiresGrad(false)).sum().backward());
      kiln.dispose([x, y]);
      pe.dispose();
    });
  });

  describe('Transformer layers', () => {
    it('encoder layer: causal means no output depends on later positions', async () => {
      const layer = new nn.TransformerEncoderLayer(8, 2, { dropout: 0, seed: 12 });
      const a = T(randND([1, 6, 8], 13));
      const changed = randND([1, 6, 8], 13);
      for (let i = 4 * 8; i < 6 * 8; i++) changed.data[i] += 1; // change positions 4 and 5
      const b = T(changed);
      const [ya, yb] = kiln.tidy(() => [layer.forward(a, { causal: true }), layer.forward(b, { causal: true })]);
      const [va, vb] = [await read(ya), await read(yb)];
      assertClose(vb.slice(0, 32), va.slice(0, 32), { atol: 1e-6, rtol: 1e-6 }, 'positions 0-3 unchanged');
      expect(vb.slice(32)).not.toEqual(va.slice(32));
      kiln.dispose([a, b, ya, yb]);
      layer.dispose();
    });

    it('encoder layer: padded positions do not affect the others', async () => {
      const layer = new nn.TransformerEncoderLayer(8, 4, { dropout: 0, seed: 14 });
      const mask = kiln.tensor(Uint8Array.from([0, 0, 0, 1, 1]), [1, 5], 'bool');
      const a = T(randND([1, 5, 8], 15));
      const changed = randND([1, 5, 8], 15);
      for (let i = 3 * 8; i < 5 * 8; i++) changed.data[i] = 100 * Math.sin(i);
      const b = T(changed);
      const [ya, yb] = kiln.tidy(() => [layer.forward(a, { keyPaddingMask: mask }), layer.forward(b, { keyPaddingMask: mask })]);
      assertClose((await read(yb)).slice(0, 24), (await read(ya)).slice(0, 24), { atol: 1e-5, rtol: 1e-5 }, 'unpadded positions');
      kiln.dispose([mask, a, b, ya, yb]);
      layer.dispose();
    });

    it('encoder and decoder layers: gradients match finite differences', async () => {
      const model = new TinySeq2Seq(16);
      // ~1,460 values, each two forward passes and a read. On the GPU a read is a round trip (a minute
      // for all of them on lavapipe), so there a sample of 8 per tensor checks every weight, bias and norm;
      // the CPU backends check every element.
      const elementsPerTensor = kiln.getBackend() === 'gpu' ? 8 : undefined;
      await gradCheck(model, randND([1, 3, 8], 17), { eps: 5e-3, atol: 3e-3, rtol: 3e-2, elementsPerTensor });
      model.dispose();
    });

    it('summary counts the parameters of an encoder layer', () => {
      const layer = new nn.TransformerEncoderLayer(16, 4, { dimFeedforward: 32 });
      // attention 4·(16·16 + 16), feed-forward 16·32 + 32 + 32·16 + 16, two LayerNorms 2·32
      expect(layer.numParameters()).toBe(4 * (16 * 16 + 16) + (16 * 32 + 32 + 32 * 16 + 16) + 64);
      const table = layer.summary([5, 16], { print: false });
      expect(table).toContain('[1, 5, 16]');
      layer.dispose();
    });

    it('save -> load through kiln.io rebuilds the layers from their configs and reproduces the outputs', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'kiln-transformer-'));
      const model = new TinySeq2Seq(18, 0.1);
      const x = T(randND([2, 4, 8], 19));
      model.eval();
      const want = kiln.tidy(() => model.forward(x));
      const config = { encoder: model.encoder.config(), decoder: model.decoder.config(), position: model.position.config() };
      kiln.saveModel(join(dir, 'm'), { stateDict: model.stateDict(), config });

      const loaded = kiln.loadModel(join(dir, 'm'));
      expect(loaded.config).toEqual(config);
      const fresh = new TinySeq2Seq(99);
      const c = loaded.config as typeof config;
      const rebuilt = [nn.TransformerEncoderLayer.fromConfig(c.encoder), nn.TransformerDecoderLayer.fromConfig(c.decoder)];
      expect(rebuilt.map((l) => l.config())).toEqual([c.encoder, c.decoder]);
      fresh.loadStateDict(loaded.stateDict);
      kiln.dispose(loaded.stateDict);
      fresh.eval();
      const got = kiln.tidy(() => fresh.forward(x));
      expect(await read(got)).toEqual(await read(want));
      kiln.dispose([x, want, got]);
      for (const m of [model, fresh, ...rebuilt]) m.dispose();
      rmSync(dir, { recursive: true, force: true });
    });

    it('a training loop holds memory flat', () => {
      const model = new TinySeq2Seq(20, 0.1);
      const opt = new kiln.optim.Adam(model.parameters(), { lr: 1e-3 });
      const x = T(randND([4, 6, 8], 21));
      const step = () =>
        kiln.tidy(() => {
          opt.zeroGrad();
          const loss = model.forward(x).square().mean();
          loss.backward();
          opt.step();
        });
      step();
      const before = kiln.memory();
      for (let i = 0; i < 20; i++) step();
      expect(kiln.memory()).toEqual(before);
      x.dispose();
      opt.dispose();
      model.dispose();
    });
  });
});
