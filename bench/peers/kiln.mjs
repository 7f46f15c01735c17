// Kiln, native backend (Rust kernels through the N-API addon), from the repository's dist/.
import { timeSync } from '../timing.mjs';
import { assertClose, randomNormal, referenceMatmul } from './common.mjs';

let kiln;

export default {
  id: 'kiln',
  column: 'kiln',
  async init() {
    kiln = await import('../../dist/index.js');
    // Sanity check on a small case before timing anything.
    const [m, k, n] = [5, 7, 3];
    const a = randomNormal(m * k, 3);
    const b = randomNormal(k * n, 4);
    const ta = kiln.tensor(a, [m, k]);
    const tb = kiln.tensor(b, [k, n]);
    const tc = kiln.matmul(ta, tb);
    assertClose('kiln matmul check', tc.dataSync(), referenceMatmul(a, b, m, k, n));
    const ts = kiln.add(ta, ta);
    assertClose('kiln add check', ts.dataSync(), a.map((x) => 2 * x));
    kiln.dispose([ta, tb, tc, ts]);
    this.info = { simdLevel: kiln.simdLevel(), numThreads: kiln.numThreads() };
    return `Kiln native (N-API), SIMD ${this.info.simdLevel}, ${this.info.numThreads} threads`;
  },
  workloads: {
    matmul({ n }) {
      const a = kiln.randn([n, n]);
      const b = kiln.randn([n, n]);
      try {
        return timeSync(() => kiln.matmul(a, b).dispose());
      } finally {
        a.dispose();
        b.dispose();
      }
    },
    add({ size }) {
      const a = kiln.tensor(randomNormal(size, 5));
      const b = kiln.tensor(randomNormal(size, 6));
      try {
        return timeSync(() => kiln.add(a, b).dispose());
      } finally {
        a.dispose();
        b.dispose();
      }
    },
  },
  /** Live tensors after the run: anything here is a leak in the benchmark or in Kiln. */
  close() {
    const live = kiln?.memory().numTensors ?? 0;
    if (live !== 0) console.warn(`  note: ${live} Kiln tensors still alive after the benchmarks`);
  },
};
