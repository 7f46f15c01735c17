/**
 * Kiln's own WASM GEMM (crates/kiln-core/src/gemm_simd128.rs) in both Node builds: the plain
 * SIMD128 one (multiply, then add) and the relaxed-SIMD one (fused multiply-add). The shared
 * suite (matmul.test.ts) runs on whichever build the wasm backend loads; this file loads each
 * build itself and checks products whose sizes cross every blocking edge (MR, NR, KC = 256,
 * MC = 120, NC = 1024), with strided and transposed operands, against the native backend.
 */
import { describe, expect, it } from 'vitest';
import * as kiln from '../ts/index.js';
import type { Backend } from '../ts/backends/backend.js';
import { guardTraps } from '../ts/backends/wasm-guard.js';
import { instantiateWasmBuild, wasmVariant } from '../ts/backends/wasm.js';


/** Deterministic values in [-1, 1). */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

const CASES: Array<[m: number, k: number, n: number]> = [
  [1, 1, 1],
  [3, 5, 12],
  [4, 9, 8],
  [7, 13, 5],
  [17, 33, 9],
  [121, 257, 25], // one row past MC, one step past KC
  [130, 300, 270],
  [5, 520, 1030], // two KC panels, past NC
  [241, 64, 13],
];

describe('WASM GEMM builds', () => {
  wasmVariant(); // turns on relaxed SIMD in Node 20's V8 if needed, before the modules compile
  for (const variant of ['simd', 'relaxed'] as const) {
    it(`${variant}: products across the blocking edges, transposed and strided, match native`, () => {
      const wasm: Backend = guardTraps(instantiateWasmBuild(variant));
      expect(wasm.simdLevel()).toBe(variant === 'relaxed' ? 'wasm-relaxed-simd' : 'wasm-simd128');
      let seed = 1;
      for (const [m, k, n] of CASES) {
        for (const [ta, tb] of [
          [false, false],
          [true, false],
          [false, true],
          [true, true],
        ] as const) {
          const a = values(m * k, seed++);
          const b = values(k * n, seed++);
          const aShape = ta ? [k, m] : [m, k];
          const bShape = tb ? [n, k] : [k, n];
          const ha = wasm.fromF32(a, aShape);
          const hb = wasm.fromF32(b, bShape);
          const hc = wasm.matmul(ha, hb, ta, tb);
          const got = wasm.readF32(hc);
          [ha, hb, hc].forEach((h) => wasm.dispose(h));
          const want = kiln.tidy(() => kiln.matmul(kiln.tensor(a, aShape), kiln.tensor(b, bShape), ta, tb).dataSync());
          const label = `${variant} [${m},${k}]x[${k},${n}] transposeA=${ta} transposeB=${tb}`;
          expect(got.length, label).toBe(m * n);
          let worst = 0;
          for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!)));
          expect(worst, label).toBeLessThan(1e-5 * Math.sqrt(k) + 1e-6);
        }
      }
      expect(wasm.memory().tensors).toBe(0);
    });
  }
});
