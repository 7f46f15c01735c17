/**
 * nn.RNN, nn.LSTM, nn.GRU: PyTorch's parameter names, shapes and init; stacked and bidirectional
 * layers against the same stack built by hand from the primitive-op cells; initial states,
 * batchFirst, returnSequences, dropout between layers; errors; save/load; no leaks in a loop.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import * as nn from '../../ts/nn/index.js';
import type { RecurrentCell, Tensor } from '../../ts/index.js';
import { forEachBackend } from '../backends.js';
import { T, assertClose, expectThrows, randND, read } from '../helpers.js';
import { recurrentFromPrimitives } from '../recurrent-reference.js';

type AnyRecurrent = nn.RNN | nn.LSTM | nn.GRU;

/** The module's layers rebuilt from its named parameters with the primitive-op cells. */
function stackFromPrimitives(m: AnyRecurrent, cell: RecurrentCell, x: Tensor, h0: Tensor | null, c0: Tensor | null): { output: Tensor; h: Tensor; c: Tensor | null } {
  const p = Object.fromEntries(m.namedParameters());
  const [batch] = x.shape;
  const H = m.hiddenSize;
  const state = (s: Tensor | null, k: number) => (s === null ? kiln.zeros([batch, H]) : s.slice([k, 0, 0], [1, batch, H]).reshape([batch, H]));
  let input = x;
  const hs: Tensor[] = [];
  const cs: Tensor[] = [];
  for (let layer = 0; layer < m.numLayers; layer++) {
    const outs: Tensor[] = [];
    for (let d = 0; d < m.directions; d++) {
      const sfx = `_l${layer}${d === 1 ? '_reverse' : ''}`;
      const w = { wIh: p[`weight_ih${sfx}`], wHh: p[`weight_hh${sfx}`], bIh: p[`bias_ih${sfx}`], bHh: p[`bias_hh${sfx}`] };
      const k = layer * m.directions + d;
      const r = recurrentFromPrimitives(cell, input, state(h0, k), cell === 'lstm' ? state(c0, k) : null, w, d === 1);
      outs.push(r.output);
      hs.push(r.h);
      if (r.c) cs.push(r.c);
    }
    input = kiln.concat(outs, -1);
  }
  return { output: input, h: kiln.stack(hs, 0), c: cs.length ? kiln.stack(cs, 0) : null };
}

const TOL = { atol: 2e-5, rtol: 1e-4 };

forEachBackend(() => {
  it('parameters have PyTorch names, shapes, order and U(±1/√H) init', async () => {
    const lstm = new nn.LSTM(3, 5, { numLayers: 2, bidirectional: true, seed: 1 });
    const names = lstm.namedParameters().map(([n, t]) => `${n} [${t.shape.join(', ')}]`);
    const layer = (l: number, sfx: string, inSize: number) => [
      `weight_ih_l${l}${sfx} [20, ${inSize}]`, `weight_hh_l${l}${sfx} [20, 5]`, `bias_ih_l${l}${sfx} [20]`, `bias_hh_l${l}${sfx} [20]`,
    ];
    expect(names).toEqual([...layer(0, '', 3), ...layer(0, '_reverse', 3), ...layer(1, '', 10), ...layer(1, '_reverse', 10)]);
    const bound = 1 / Math.sqrt(5);
    for (const [name, t] of lstm.namedParameters()) {
      const v = await read(t);
      expect(Math.max(...v.map(Math.abs)), name).toBeLessThanOrEqual(bound);
      if (v.length >= 20) expect(Math.max(...v.map(Math.abs)), `${name} spans the range`).toBeGreaterThan(0.7 * bound);
    }
    expect(new nn.GRU(3, 4, { bias: false }).namedParameters().map(([n]) => n)).toEqual(['weight_ih_l0', 'weight_hh_l0']);
    expect(new nn.RNN(3, 4).namedParameters()[0][1].shape).toEqual([4, 3]);
    expect(new nn.GRU(3, 4).namedParameters()[0][1].shape).toEqual([12, 3]);
    lstm.dispose();
  });

  it('stacked bidirectional layers match the same stack built from primitive ops (values and gradients)', async () => {
    const before = kiln.memory().numTensors;
    const cases: Array<[RecurrentCell, () => AnyRecurrent]> = [
      ['lstm', () => new nn.LSTM(3, 4, { numLayers: 2, bidirectional: true, seed: 2 })],
      ['gru', () => new nn.GRU(3, 4, { numLayers: 3, seed: 3 })],
      ['rnnRelu', () => new nn.RNN(3, 4, { numLayers: 2, bidirectional: true, nonlinearity: 'relu', seed: 4 })],
      ['rnnTanh', () => new nn.RNN(3, 4, { seed: 5 })],
    ];
    for (const [cell, make] of cases) {
      for (const withState of [false, true]) {
        const m = make();
        const x = T(randND([2, 5, 3], 10));
        const S = m.numLayers * m.directions;
        const h0 = withState ? T(randND([S, 2, 4], 11, -0.5, 0.5)) : null;
        const c0 = withState && cell === 'lstm' ? T(randND([S, 2, 4], 12, -0.5, 0.5)) : null;
        const run = (useModule: boolean) =>
          kiln.tidy(() => {
            m.zeroGrad();
            let out: Tensor, h: Tensor, c: Tensor | null = null;
            if (!useModule) ({ output: out, h, c } = stackFromPrimitives(m, cell, x, h0, c0));
            else if (m instanceof nn.LSTM) [out, [h, c]] = m.forward(x, withState ? [h0!, c0!] : undefined);
            else [out, h] = m.forward(x, h0 ?? undefined);
            const loss = out.mul(T(randND([...out.shape], 13))).sum().add(h.mul(T(randND([...h.shape], 14))).sum());
            (c === null ? loss : loss.add(c.sum())).backward();
            const grads = m.parameters().map((p) => Array.from(p.grad!.dataSync()));
            return { values: [out, h, ...(c ? [c] : [])].map((t) => Array.from(t.dataSync())), shapes: [out.shape, h.shape], grads };
          });
        const got = run(true);
        const want = run(false);
        const label = `${cell} layers=${m.numLayers} D=${m.directions} state=${withState}`;
        expect(got.shapes, label).toEqual(want.shapes);
        expect(got.shapes[0], label).toEqual([2, 5, 4 * m.directions]);
        expect(got.shapes[1], label).toEqual([S, 2, 4]);
        got.values.forEach((v, k) => assertClose(v, want.values[k], TOL, `${label}: result ${k}`));
        got.grads.forEach((g, k) => assertClose(g, want.grads[k], TOL, `${label}: gradient of ${m.namedParameters()[k][0]}`));
        m.dispose();
        kiln.dispose([x, h0, c0].filter((t): t is Tensor => t !== null));
      }
    }
    expect(kiln.memory().numTensors).toBe(before);
  });

  it('batchFirst false and returnSequences false give the same numbers in the documented shapes', async () => {
    const x = T(randND([2, 6, 3], 20));
    const seqFirst = x.permute([1, 0, 2]);
    const full = new nn.GRU(3, 4, { bidirectional: true, seed: 6 });
    const timeMajor = new nn.GRU(3, 4, { bidirectional: true, batchFirst: false, seed: 6 });
    const last = new nn.GRU(3, 4, { bidirectional: true, returnSequences: false, seed: 6 });
    const [a, hA] = full.forward(x);
    const [b, hB] = timeMajor.forward(seqFirst);
    const [c, hC] = last.forward(x);
    expect(b.shape).toEqual([6, 2, 8]);
    expect(c.shape).toEqual([2, 8]);
    assertClose(await read(b.permute([1, 0, 2])), await read(a), { atol: 0, rtol: 0 }, 'time-major output');
    assertClose(await read(hB), await read(hA), { atol: 0, rtol: 0 }, 'time-major hN');
    // The last time step of each direction: forward at t = 5, backward at t = 0 (= both final states).
    const fwdLast = a.slice([0, 5, 0], [2, 1, 4]).reshape([2, 4]);
    const bwdFirst = a.slice([0, 0, 4], [2, 1, 4]).reshape([2, 4]);
    assertClose(await read(c), await read(kiln.concat([fwdLast, bwdFirst], 1)), { atol: 0, rtol: 0 }, 'returnSequences false');
    assertClose(await read(c), await read(kiln.concat([hC.slice([0, 0, 0], [1, 2, 4]), hC.slice([1, 0, 0], [1, 2, 4])], 2).reshape([2, 8])), { atol: 0, rtol: 0 }, 'vs hN');
    kiln.dispose([x, seqFirst, a, hA, b, hB, c, hC, fwdLast, bwdFirst]);
    for (const m of [full, timeMajor, last]) m.dispose();
  });

  it('dropout acts between layers in training only', async () => {
    const x = T(randND([4, 5, 3], 30));
    const m = new nn.LSTM(3, 8, { numLayers: 2, dropout: 0.5, seed: 7 });
    const out = () => kiln.tidy(() => Array.from(m.forward(x)[0].dataSync()));
    m.eval();
    const evalA = out();
    expect(out()).toEqual(evalA);
    m.train();
    kiln.setSeed(1);
    const trainA = out();
    kiln.setSeed(2);
    const trainB = out();
    expect(trainA).not.toEqual(evalA);
    expect(trainA).not.toEqual(trainB);
    // One layer: no layer to drop between, so training equals eval.
    const single = new nn.GRU(3, 8, { dropout: 0.5, seed: 8 });
    const once = () => kiln.tidy(() => Array.from(single.forward(x)[0].dataSync()));
    const t1 = once();
    single.eval();
    expect(once()).toEqual(t1);
    x.dispose();
    m.dispose();
    single.dispose();
  });

  it('bad input and options are Errors naming the layer and the shapes', () => kiln.tidy(() => {
    const lstm = new nn.LSTM(3, 4, { numLayers: 2 });
    const x = kiln.zeros([2, 5, 3]);
    expectThrows(() => lstm.forward(kiln.zeros([2, 5, 7])), 'LSTM(3 -> 4)', 'expected input [batch, steps, 3]', '[2, 5, 7]');
    expectThrows(() => lstm.forward(kiln.zeros([5, 3])), 'LSTM(3 -> 4)', '[5, 3]');
    expectThrows(() => lstm.forward(x, [kiln.zeros([1, 2, 4]), kiln.zeros([2, 2, 4])]), 'h0 must be [numLayers * directions, batch, hiddenSize] = [2, 2, 4]', '[1, 2, 4]');
    expectThrows(() => lstm.forward(x, kiln.zeros([2, 2, 4]) as unknown as [Tensor, Tensor]), 'initial state must be [h0, c0]');
    expectThrows(() => new nn.GRU(3, 4, { batchFirst: false }).forward(kiln.zeros([2, 5, 4])), 'GRU(3 -> 4)', 'expected input [steps, batch, 3]');
    expectThrows(() => new nn.GRU(0, 4), 'inputSize must be a positive integer');
    expectThrows(() => new nn.LSTM(3, 4, { numLayers: 1.5 }), 'numLayers must be a positive integer');
    expectThrows(() => new nn.LSTM(3, 4, { dropout: 1 }), 'dropout must be in [0, 1)');
    expectThrows(() => new nn.RNN(3, 4, { nonlinearity: 'sigmoid' as 'tanh' }), "nonlinearity must be 'tanh' or 'relu'");
    expectThrows(() => lstm.forward(x.cast('int32')), 'lstm', 'x must be float32');
    lstm.dispose();
  }));

  it('saveModel/loadModel with config() rebuilds an identical model', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-rnn-'));
    const model = new nn.LSTM(3, 6, { numLayers: 2, bidirectional: true, returnSequences: false, seed: 9 });
    const x = T(randND([2, 4, 3], 40));
    const [want] = model.forward(x);
    kiln.saveModel(join(dir, 'm'), { stateDict: model.stateDict(), config: { ...model.config() } });
    const { stateDict, config } = kiln.loadModel(join(dir, 'm'));
    expect(config).toEqual({ type: 'LSTM', inputSize: 3, hiddenSize: 6, numLayers: 2, bias: true, batchFirst: true, bidirectional: true, dropout: 0, returnSequences: false });
    const c = config as unknown as nn.RecurrentConfig;
    const fresh = new nn.LSTM(c.inputSize, c.hiddenSize, c);
    fresh.loadStateDict(stateDict);
    kiln.dispose(stateDict);
    const [got, [h, cN]] = fresh.forward(x);
    assertClose(await read(got), await read(want), { atol: 0, rtol: 0 }, 'reloaded');
    expect(new nn.RNN(2, 3, { nonlinearity: 'relu' }).config().nonlinearity).toBe('relu');
    kiln.dispose([x, want, got, h, cN]);
    model.dispose();
    fresh.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a training loop holds flat memory; summary shows the shapes', () => {
    const before = kiln.memory();
    const lstm = new nn.LSTM(3, 8, { bidirectional: true, seed: 10 });
    const head = new nn.Linear(16, 1, { seed: 11 });
    const opt = new kiln.optim.Adam([...lstm.parameters(), ...head.parameters()], { lr: 1e-2 });
    const x = T(randND([4, 6, 3], 50));
    const y = T(randND([4, 1], 51));
    const step = () =>
      kiln.tidy(() => {
        opt.zeroGrad();
        const [out] = lstm.forward(x);
        const loss = kiln.mse(head.forward(out.slice([0, 5, 0], [4, 1, 16]).reshape([4, 16])), y);
        loss.backward();
        opt.step();
      });
    step();
    const after1 = kiln.memory();
    for (let i = 0; i < 20; i++) step();
    const after = kiln.memory();
    expect(after.numTensors).toBe(after1.numTensors);
    expect(after.numBytes).toBe(after1.numBytes);
    const table = lstm.summary([6, 3], { print: false, batchSize: 2 });
    expect(table).toContain('[2, 6, 16]');
    opt.dispose();
    lstm.dispose();
    head.dispose();
    kiln.dispose([x, y]);
    expect(kiln.memory().numTensors).toBe(before.numTensors);
  });
});
