/**
 * Issue 13, class 1: graphs of any depth are walked and freed without recursion (kiln-core's
 * autograd/teardown.rs and run_backward). A running loss summed without detach() used to segfault
 * the native addon at about 200k nodes and overflow WASM's stack at 5-20k, after which the WASM
 * instance was unusable. Here: 10^6 nodes, then the backend must still work.
 */
import { expect, it } from 'vitest';
import * as kiln from '../../ts/index.js';
import type { Tensor } from '../../ts/index.js';
import { forEachBackend, heavyIt } from '../backends.js';

/**
 * The graph code is kiln-core's, the same for the GPU as natively; on the GPU each node is a
 * kernel, so a software adapter (lavapipe) needs ~90 s to build 250k nodes and more than 300 s to
 * walk them: heavyIt skips these there unless KILN_GPU_FULL=1.
 */
const nodesFor = (backend: string): number => (backend === 'gpu' ? 250_000 : 1_000_000);

/** The classic: `total = total + w` once per step, never detached; only the last handle is kept. */
function runningSum(w: Tensor, steps: number): Tensor {
  let total = w.mul(0);
  for (let i = 0; i < steps; i++) {
    const next = total.add(w);
    total.dispose(); // frees the handle, not the graph: `next` still refers to it
    total = next;
  }
  return total;
}

forEachBackend((backend) => {
  const nodes = nodesFor(backend);
  const heavy = heavyIt(backend);

  heavy(`a ${nodes.toLocaleString('en')}-node graph is freed without recursion, and the backend stays usable`, () => {
    const start = kiln.memory();
    const w = kiln.scalar(1).setRequiresGrad();
    runningSum(w, nodes).dispose();
    const sum = kiln.tidy(() => kiln.add(kiln.tensor([1, 2]), kiln.tensor([3, 4])).dataSync());
    expect(sum, 'an op after the graph was freed').toEqual(new Float32Array([4, 6]));
    w.dispose();
    expect(kiln.memory().numTensors).toBe(start.numTensors);
  }, 300_000);

  heavy(`backward walks a ${nodes.toLocaleString('en')}-node graph (d(sum of N copies of w)/dw = N)`, () => {
    const w = kiln.scalar(0.5).setRequiresGrad();
    const total = runningSum(w, nodes);
    total.backward();
    // N is exact in float32 (below 2^24).
    expect(Array.from(w.grad!.dataSync())).toEqual([nodes]);
    total.dispose();
    const x = kiln.scalar(2).setRequiresGrad();
    const y = x.mul(x);
    y.backward();
    expect(Array.from(x.grad!.dataSync()), 'a small graph afterwards').toEqual([4]);
    kiln.dispose([w, x, y]);
  }, 300_000);
});
