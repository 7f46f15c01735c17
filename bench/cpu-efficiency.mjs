// GFLOP per second of CPU time (this process's user + system time, all threads) for the conv2d
// workloads: what each library gets out of a core. Unlike the wall-clock figures of run.mjs, this
// barely moves when other processes share the machine (they take turns on the cores, which stretches
// wall-clock time but not the CPU time this process is charged). It does not show how well a
// library uses several cores: a 2-thread Kiln that spent all its time spinning would score low here,
// and 2 busy threads count twice. `node bench/cpu-efficiency.mjs` (after `npm run bench` once, which
// installs the peers).
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { workloads } from './workloads.mjs';
import { randomNormal } from './peers/common.mjs';

tf.env().set('PROD', true);
await tf.setBackend('wasm');
await tf.ready();
const kiln = await import('../dist/index.js');

/** Best GFLOP per CPU-second of `fn` over 3 rounds of ~0.7 s wall-clock each. */
function perCpuSecond(flops, fn) {
  fn();
  let best = 0;
  for (let r = 0; r < 3; r++) {
    const start = process.cpuUsage();
    const t0 = performance.now();
    let calls = 0;
    while (performance.now() - t0 < 700) {
      fn();
      calls++;
    }
    const used = process.cpuUsage(start);
    best = Math.max(best, (flops * calls) / ((used.user + used.system) / 1e6) / 1e9);
  }
  return best;
}

console.log(`GFLOP per CPU-second (Kiln native: ${kiln.numThreads()} threads; tfjs-wasm and Kiln's WASM backend: 1 thread)`);
console.log(`${'workload'.padEnd(34)} ${'kiln'.padStart(8)} ${'kiln-wasm'.padStart(10)} ${'tfjs-wasm'.padStart(10)} ${'kiln/tfjs-wasm'.padStart(15)}`);
for (const w of workloads.filter((x) => x.kind === 'conv2d')) {
  const { batch, channels, size, filters, kernel } = w.params;
  const flops = 2 * batch * size * size * filters * channels * kernel * kernel;
  const kilnRate = (backend) => {
    kiln.setBackend(backend);
    const x = kiln.tensor(randomNormal(batch * channels * size * size, 7), [batch, channels, size, size]);
    const wt = kiln.tensor(randomNormal(filters * channels * kernel * kernel, 8), [filters, channels, kernel, kernel]);
    try {
      return perCpuSecond(flops, () => kiln.conv2d(x, wt, { padding: 'same' }).dispose());
    } finally {
      kiln.dispose([x, wt]);
      kiln.setBackend('native');
    }
  };
  const native = kilnRate('native');
  const wasm = kilnRate('wasm');
  const x = tf.tensor4d(randomNormal(batch * size * size * channels, 7), [batch, size, size, channels]);
  const wt = tf.tensor4d(randomNormal(kernel * kernel * channels * filters, 8), [kernel, kernel, channels, filters]);
  const tfw = perCpuSecond(flops, () => tf.conv2d(x, wt, 1, 'same').dispose());
  tf.dispose([x, wt]);
  console.log(`${w.label.padEnd(34)} ${native.toFixed(1).padStart(8)} ${wasm.toFixed(1).padStart(10)} ${tfw.toFixed(1).padStart(10)} ${`${(native / tfw).toFixed(2)}x`.padStart(15)}`);
}
