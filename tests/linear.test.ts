/**
 * kiln.linear (crates/kiln-core/src/ops/linear.rs): x·Wᵀ + bias (+ residual) against the
 * definition in float64 for a vector, a matrix and a batch of sequences, with and without a bias
 * and a residual (also a non-contiguous one), with the weight given as a transposed view (an
 * imported [K, N] matrix); its gradients against finite differences; a fused activation against
 * the definition (relu) and the separate op (gelu), with and without a gradient to record; and the
 * errors.
 */
import { describe, expect, it } from 'vitest';
import * as kiln from '../ts/index.js';
import { forEachBackend } from './backends.js';
import { gradCheck } from './gradcheck.js';
import { assertClose, expectEveryTestToFreeItsTensors, expectThrows, randND, read, T } from './helpers.js';
import type { ND } from './reference.js';

/** x [..., K] · W[N, K]ᵀ + b in float64. */
function reference(x: ND, w: ND, b?: ND): number[] {
  const [n, k] = w.shape;
  const out: number[] = [];
  for (let r = 0; r < x.data.length / k; r++) {
    for (let j = 0; j < n; j++) {
      let s = b?.data[j] ?? 0;
      for (let p = 0; p < k; p++) s += x.data[r * k + p] * w.data[j * k + p];
      out.push(s);
    }
  }
  return out;
}

forEachBackend(() => {
  expectEveryTestToFreeItsTensors();

  describe('linear', () => {
    it('x·Wᵀ + bias + residual for a vector, a matrix and a batch of sequences, with and without a bias and a residual (contiguous or a view)', async () => {
      const w = randND([7, 33], 1);
      const b = randND([7], 2);
      for (const shape of [[33], [5, 33], [2, 3, 33], [130, 33]]) {
        const x = randND(shape, 3);
        const want = [...shape.slice(0, -1), 7];
        const r = randND(want, 14);
        for (const bias of [b, undefined]) {
          for (const residual of [undefined, r]) {
            const y = kiln.tidy(() => kiln.linear(T(x), T(w), bias && T(bias), residual && T(residual)));
            expect([...y.shape]).toEqual(want);
            const expected = reference(x, w, bias).map((v, i) => v + (residual?.data[i] ?? 0));
            assertClose(await read(y), expected, { atol: 1e-5, rtol: 1e-5 }, `[${shape}] bias ${bias !== undefined}, residual ${residual !== undefined}`);
            y.dispose();
          }
        }
        if (shape.length === 2) {
          // The residual as the transposed view of a [7, rows] matrix.
          const rt = kiln.tidy(() => T(r).transpose().contiguous());
          const y = kiln.tidy(() => kiln.linear(T(x), T(w), T(b), rt.transpose()));
          assertClose(await read(y), reference(x, w, b).map((v, i) => v + r.data[i]), { atol: 1e-5, rtol: 1e-5 }, `[${shape}] residual view`);
          kiln.dispose([y, rt]);
        }
      }
    });

    it('reads a weight given as a transposed view in place', async () => {
      const x = randND([4, 6], 4);
      const wt = randND([6, 3], 5); // B = Wᵀ, as an imported MatMul stores it
      const got = kiln.tidy(() => kiln.linear(T(x), T(wt).transpose(), kiln.ones([3])));
      const want = kiln.tidy(() => kiln.matmul(T(x), T(wt)).add(1));
      assertClose(await read(got), await read(want), { atol: 1e-5, rtol: 1e-5 });
      kiln.dispose([got, want]);
    });

    it('applies an activation as the separate op would, fused under noGrad (the packed product and a thin one)', async () => {
      // [130, 70] x [40, 70]: the native AVX-512 packed product (the activation per block); [5, 33]: a thin one.
      for (const [rows, k, n] of [[130, 70, 40], [5, 33, 7]]) {
        const [x, w, b, r] = [randND([rows, k], 31), randND([n, k], 32), randND([n], 33), randND([rows, n], 34)];
        const plain = reference(x, w, b).map((v, i) => v + r.data[i]);
        const relu = kiln.noGrad(() => kiln.tidy(() => kiln.linear(T(x), T(w), T(b), T(r), { activation: 'relu' })));
        assertClose(await read(relu), plain.map((v) => Math.max(v, 0)), { atol: 1e-5, rtol: 1e-5 }, `relu [${rows}, ${k}] -> ${n}`);
        const fused = kiln.noGrad(() => kiln.tidy(() => kiln.linear(T(x), T(w), T(b), null, { activation: 'gelu' })));
        const separate = kiln.tidy(() => kiln.gelu(kiln.linear(T(x), T(w), T(b))));
        assertClose(await read(fused), await read(separate), { atol: 1e-6, rtol: 1e-6 }, `gelu [${rows}, ${k}] -> ${n}`);
        kiln.dispose([relu, fused, separate]);
      }
    });

    it('gradients of x, weight and bias match finite differences', async () => {
      await gradCheck('linear, gelu', [randND([3, 4], 35), randND([5, 4], 36), randND([5], 37)], ([x, w, b]) => kiln.linear(x, w, b, null, { activation: 'gelu' }));
      await gradCheck('linear', [randND([2, 3, 4], 6), randND([5, 4], 7), randND([5], 8)], ([x, w, b]) => kiln.linear(x, w, b));
      await gradCheck('linear, vector, no bias', [randND([4], 9), randND([3, 4], 10)], ([x, w]) => kiln.linear(x, w));
      await gradCheck('linear, residual', [randND([2, 3, 4], 15), randND([5, 4], 16), randND([5], 17), randND([2, 3, 5], 18)], ([x, w, b, r]) => kiln.linear(x, w, b, r));
      await gradCheck('linear, residual, no bias', [randND([3, 4], 19), randND([5, 4], 20), randND([3, 5], 21)], ([x, w, r]) => kiln.linear(x, w, null, r));
    });

    it('bad input is an error naming linear, the shapes and the dtypes', () => {
      kiln.tidy(() => {
        const x = kiln.zeros([2, 4]);
        expectThrows(() => kiln.linear(x, kiln.zeros([3, 5])), "linear: x's last dim must equal the weight's inFeatures 5", 'x float32 [2, 4], weight float32 [3, 5]');
        expectThrows(() => kiln.linear(x, kiln.zeros([3, 4]), kiln.zeros([4])), 'linear: bias must be float32 [3]', 'got float32 [4]');
        expectThrows(() => kiln.linear(x, kiln.zeros([4])), 'linear: expected float32 x [..., inFeatures] and weight [outFeatures, inFeatures]');
        // A residual must have the output's shape: no broadcasting.
        expectThrows(() => kiln.linear(x, kiln.zeros([3, 4]), null, kiln.zeros([3])), "linear: residual must be float32 [2, 3] (the output's shape)", 'got float32 [3]');
        expectThrows(() => kiln.linear(x, kiln.zeros([3, 4]), kiln.zeros([3]), kiln.zeros([2, 3], 'int32')), 'linear: residual must be float32 [2, 3]', 'got int32 [2, 3]');
        expectThrows(() => kiln.linear(kiln.zeros([2, 4], 'int32'), kiln.zeros([3, 4])), 'linear', 'int32 [2, 4]');
        expectThrows(() => kiln.linear(x, kiln.zeros([3, 4]), null, null, { activation: 'swoosh' }), "linear: unknown activation 'swoosh'");
      });
    });
  });
});
