// Kiln's side of bench/distributed/run.mjs: kiln.distributed.allReduce (sum) on float32 tensors
// of 1 KB to 64 MB, timed as allreduce.c times MPI_Allreduce (the difference is Kiln's cost: the
// dtype/shape header exchange and copying the tensor in and out). Rank 0 prints JSON lines.
import * as kiln from '../../dist/index.js';

const { distributed } = kiln;
const { rank } = distributed.init();
const slowest = (seconds) => {
  const t = kiln.tensor([seconds]);
  const max = distributed.allReduce(t, 'max');
  const value = max.dataSync()[0];
  kiln.dispose([t, max]);
  return value;
};
for (let bytes = 1024; bytes <= 64 << 20; bytes *= 4) {
  const x = kiln.ones([bytes / 4]);
  const once = () => distributed.allReduce(x).dispose();
  for (let w = 0; w < 3; w++) once();
  let t0 = performance.now();
  once();
  const iters = Math.max(5, Math.floor(0.5 / slowest((performance.now() - t0) / 1000)));
  distributed.barrier();
  t0 = performance.now();
  for (let i = 0; i < iters; i++) once();
  const mean = slowest((performance.now() - t0) / 1000 / iters);
  if (rank === 0) console.log(JSON.stringify({ bytes, seconds: mean }));
  x.dispose();
}
distributed.finalize();
