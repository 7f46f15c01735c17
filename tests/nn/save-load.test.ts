/** An nn model saved with kiln.saveModel and loaded into a fresh model predicts identically. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import * as nn from '../../ts/nn/index.js';
import { forEachBackend } from '../backends.js';

const build = (seed: number) =>
  new nn.Sequential(new nn.Linear(6, 16, { seed }), new nn.BatchNorm1d(16), new nn.ReLU(), new nn.Linear(16, 3, { seed: seed + 1 }));

forEachBackend(() => {
  it('save -> load reproduces the outputs, running statistics included', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-model-'));
    const before = kiln.memory().numTensors;
    const model = build(1);
    const x = kiln.randn([8, 6], { seed: 5 });
    kiln.tidy(() => {
      model.train();
      model.forward(x); // moves BatchNorm's running statistics off their initial values
    });
    model.eval();
    const want = kiln.tidy(() => model.forward(x));
    kiln.saveModel(join(dir, 'm'), { stateDict: model.stateDict(), config: { layers: [6, 16, 3] } });

    const fresh = build(2);
    const { stateDict, config } = kiln.loadModel(join(dir, 'm'));
    expect(config).toEqual({ layers: [6, 16, 3] });
    fresh.loadStateDict(stateDict);
    kiln.dispose(stateDict);
    fresh.eval();
    const got = kiln.tidy(() => fresh.forward(x));
    expect(Array.from(await got.data())).toEqual(Array.from(await want.data()));

    kiln.dispose([x, want, got]);
    model.dispose();
    fresh.dispose();
    expect(kiln.memory().numTensors).toBe(before);
    rmSync(dir, { recursive: true, force: true });
  });
});
