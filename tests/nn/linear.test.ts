/** Linear: forward against a hand computation, gradients (hand and finite differences), shapes, init. */
import { expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import * as nn from '../../ts/nn/index.js';
import { forEachBackend } from '../backends.js';
import { assertClose, expectThrows, randND, read, expectEveryTestToFreeItsTensors } from '../helpers.js';
import { gradCheck } from './gradcheck.js';

forEachBackend(() => {
  expectEveryTestToFreeItsTensors();

  /** A Linear(3 -> 4) with known weights (stored [out, in]) and bias. */
  const W = [[1, 2, 3], [-1, 0, 1], [0.5, 0.5, 0.5], [2, -2, 0]];
  const B = [0.1, -0.2, 0.3, 0];
  const X = [[1, 2, 3], [-1, 0, 2]];
  function known(): nn.Linear {
    const lin = new nn.Linear(3, 4);
    kiln.tidy(() => {
      lin.loadStateDict({ weight: kiln.tensor(W), bias: kiln.tensor(B) });
    });
    return lin;
  }

  it('computes x·Wᵀ + b with the weight stored [out, in]', async () => {
    const lin = known();
    expect([...lin.weight.shape]).toEqual([4, 3]);
    const y = kiln.tidy(() => lin.forward(kiln.tensor(X)));
    const want = X.flatMap((x) => W.map((w, o) => w[0] * x[0] + w[1] * x[1] + w[2] * x[2] + B[o]));
    expect([...y.shape]).toEqual([2, 4]);
    assertClose(await read(y), want);
    y.dispose();
    lin.dispose();
  });

  it('gradients: dW = rᵀx, db = Σr, dx = r·W for L = Σ y·r', async () => {
    const lin = known();
    const r = [[1, 0, -1, 2], [0.5, 1, 1, -1]];
    const dx = kiln.tidy(() => {
      const x = kiln.tensor(X).setRequiresGrad();
      lin.forward(x).mul(kiln.tensor(r)).sum().backward();
      return x.grad!;
    });
    const [gw, gb] = [lin.weight.grad!, lin.bias!.grad!];
    assertClose(await read(gw), W.flatMap((_, o) => [0, 1, 2].map((i) => r[0][o] * X[0][i] + r[1][o] * X[1][i])));
    assertClose(await read(gb), [0, 1, 2, 3].map((o) => r[0][o] + r[1][o]));
    assertClose(await read(dx), X.flatMap((_, n) => [0, 1, 2].map((i) => W.reduce((s, w, o) => s + r[n][o] * w[i], 0))));
    kiln.dispose([gw, gb, dx]);
    lin.dispose();
  });

  it('gradients match finite differences (with and without bias)', async () => {
    const lin = new nn.Linear(4, 3, { seed: 7 });
    await gradCheck(lin, randND([5, 4], 1));
    lin.dispose();
    const noBias = new nn.Linear(4, 3, { seed: 8, bias: false });
    expect(noBias.namedParameters().map(([n]) => n)).toEqual(['weight']);
    await gradCheck(noBias, randND([2, 4], 2));
    noBias.dispose();
  });

  it('accepts [..., in] (rank 1 and rank 3) and names itself in shape errors', async () => {
    const lin = known();
    const [y1, y3, y2] = kiln.tidy(() => {
      const x3 = kiln.tensor([X, X.map((r) => r.map((v) => -v))]);
      return [lin.forward(kiln.tensor(X[0])), lin.forward(x3), lin.forward(kiln.tensor(X))];
    });
    expect([...y1.shape]).toEqual([4]);
    expect([...y3.shape]).toEqual([2, 2, 4]);
    const flat2 = await read(y2);
    assertClose((await read(y3)).slice(0, 8), flat2);
    assertClose(await read(y1), flat2.slice(0, 4));
    kiln.tidy(() => {
      expectThrows(() => lin.forward(kiln.zeros([2, 5])), 'Linear(3 -> 4): expected input [..., 3], got float32 [2, 5]');
    });
    expectThrows(() => new nn.Linear(0, 3), 'Linear: inFeatures must be a positive integer, got 0');
    kiln.dispose([y1, y2, y3]);
    lin.dispose();
  });

  it('default init is U(±1/√in) for weight and bias, seeded and reproducible; init is selectable', async () => {
    const a = new nn.Linear(400, 50, { seed: 3 });
    const b = new nn.Linear(400, 50, { seed: 3 });
    const c = new nn.Linear(400, 50, { seed: 4 });
    const wa = await read(a.weight);
    expect(wa).toEqual(await read(b.weight));
    expect(wa).not.toEqual(await read(c.weight));
    expect(await read(a.bias!)).not.toEqual(wa.slice(0, 50)); // weight and bias draw different streams
    const bound = 1 / Math.sqrt(400);
    for (const v of [...wa, ...(await read(a.bias!))]) expect(Math.abs(v)).toBeLessThanOrEqual(bound);
    expect(Math.max(...wa.map(Math.abs))).toBeGreaterThan(0.95 * bound);
    const g = new nn.Linear(400, 50, { init: 'glorotNormal', biasInit: 'zeros', seed: 1 });
    expect(await read(g.bias!)).toEqual(new Array(50).fill(0));
    const std = Math.sqrt((await read(g.weight)).reduce((s, v) => s + v * v, 0) / 20000);
    expect(std).toBeCloseTo(Math.sqrt(2 / 450), 2);
    expectThrows(() => new nn.Linear(2, 2, { init: 'nope' as nn.InitializerName }), "Linear: unknown initializer 'nope'");
    for (const m of [a, b, c, g]) m.dispose();
  });
});
