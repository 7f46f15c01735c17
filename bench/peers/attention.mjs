// The self-attention workloads' shared inputs and float64 reference, so every library computes the
// same layer on the same numbers and is checked before it is timed.
//
// The layer (multi-head self-attention without masks, as in a Transformer encoder): x [T, d];
// q, k, v = x·Wq, x·Wk, x·Wv, split into `heads` heads of d / heads; per head
// softmax(q·kᵀ / √(d / heads))·v; heads merged back to [T, d]; output = merged·Wo. Weights
// N(0, 1/d) so the scores stay in a realistic range.
import { randomNormal } from './common.mjs';

const cache = new Map();

/** { x [T·d], wq, wk, wv, wo [d·d] } as Float32Arrays, the same objects every call (read only). */
export function attentionSetup({ seq, dModel }) {
  const key = `${seq},${dModel}`;
  if (!cache.has(key)) {
    const weight = (seed) => randomNormal(dModel * dModel, seed).map((v) => v / Math.sqrt(dModel));
    cache.set(key, { x: randomNormal(seq * dModel, 31), wq: weight(32), wk: weight(33), wv: weight(34), wo: weight(35) });
  }
  return cache.get(key);
}

/** The first `rows` rows of the layer's output, in float64: [rows·d]. */
export function referenceAttention({ seq, dModel, heads }, rows) {
  const { x, wq, wk, wv, wo } = attentionSetup({ seq, dModel });
  const dh = dModel / heads;
  const project = (w, n) => {
    const out = new Float64Array(n * dModel);
    for (let i = 0; i < n; i++) for (let p = 0; p < dModel; p++) for (let j = 0; j < dModel; j++) out[i * dModel + j] += x[i * dModel + p] * w[p * dModel + j];
    return out;
  };
  const [q, k, v] = [project(wq, rows), project(wk, seq), project(wv, seq)];
  const merged = new Float64Array(rows * dModel);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < rows; i++) {
      const s = Array.from({ length: seq }, (_, j) => {
        let dot = 0;
        for (let c = 0; c < dh; c++) dot += q[i * dModel + h * dh + c] * k[j * dModel + h * dh + c];
        return dot / Math.sqrt(dh);
      });
      const m = Math.max(...s);
      const e = s.map((z) => Math.exp(z - m));
      const sum = e.reduce((a, b) => a + b, 0);
      for (let j = 0; j < seq; j++) for (let c = 0; c < dh; c++) merged[i * dModel + h * dh + c] += (e[j] / sum) * v[j * dModel + h * dh + c];
    }
  }
  const out = new Float64Array(rows * dModel);
  for (let i = 0; i < rows; i++) for (let p = 0; p < dModel; p++) for (let j = 0; j < dModel; j++) out[i * dModel + j] += merged[i * dModel + p] * wo[p * dModel + j];
  return out;
}

/** Rows of the output a peer checks against the reference before timing. */
export const CHECK_ROWS = 4;
