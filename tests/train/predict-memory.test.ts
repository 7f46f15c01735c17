/** predict frees the layers' intermediates: only its output outlives the call. */
import { expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import { forEachBackend } from '../backends.js';

forEachBackend(() => {
  it('repeated predict calls leave no tensors behind', async () => {
    const model = new kiln.nn.Sequential(new kiln.nn.Linear(4, 8, { seed: 1 }), new kiln.nn.ReLU(), new kiln.nn.Linear(8, 2, { seed: 2 }));
    const x = kiln.randn([3, 4], { seed: 3 });
    const before = kiln.memory().numTensors;
    for (let i = 0; i < 10; i++) (await kiln.predict(model, x)).dispose();
    expect(kiln.memory().numTensors).toBe(before);
    x.dispose();
    model.dispose();
  });
});
