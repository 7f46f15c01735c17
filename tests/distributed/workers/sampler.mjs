// DistributedDataLoader on N ranks (tests/distributed/sampler.test.ts): 10 samples whose feature
// is their index, per-rank batch 2, shuffled with seed 1 and without a seed (rank 0's broadcast).
// Prints {rank, seeded: [[indices of epoch 0 batches]], [[epoch 1]]], unseeded, batches}.
import * as kiln from '../../../dist/index.js';

const { rank } = kiln.distributed.init();
const dataset = new kiln.data.TensorDataset(Float32Array.from({ length: 10 }, (_, i) => i), [1], new Int32Array(10));
async function epochs(loader, count) {
  const out = [];
  for (let e = 0; e < count; e++) {
    const seen = [];
    for await (const { x, y } of loader) {
      seen.push(...x.dataSync());
      kiln.dispose([x, y]);
    }
    out.push(seen);
  }
  return out;
}
const seeded = new kiln.distributed.DistributedDataLoader(dataset, { batchSize: 2, shuffle: true, seed: 1 });
const unseeded = new kiln.distributed.DistributedDataLoader(dataset, { batchSize: 2, shuffle: true });
console.log(JSON.stringify({ rank, seeded: await epochs(seeded, 2), unseeded: (await epochs(unseeded, 1))[0], batches: seeded.length }));
