// Helpers shared by the peer modules.

/** `n` samples of N(0, 1) as float32 (Box-Muller; seeded so every run feeds the same numbers). */
export function randomNormal(n, seed = 1) {
  let s = seed >>> 0 || 1;
  const uniform = () => {
    // xorshift32, mapped to (0, 1]
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 1) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(uniform()));
    const t = 2 * Math.PI * uniform();
    out[i] = r * Math.cos(t);
    if (i + 1 < n) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

/** Reference row-major [m,k] @ [k,n] in float64, for correctness checks on small cases. */
export function referenceMatmul(a, b, m, k, n) {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let p = 0; p < k; p++) {
      const x = a[i * k + p];
      for (let j = 0; j < n; j++) out[i * n + j] += x * b[p * n + j];
    }
  return out;
}

/** -log softmax(z)[label] in float64: one sample's cross-entropy, for the first-step loss checks. */
export function crossEntropyOf(z, label) {
  const max = Math.max(...z);
  let sum = 0;
  for (const v of z) sum += Math.exp(v - max);
  return Math.log(sum) + max - z[label];
}

/** Throws unless `loss` (a library's loss on the first training step) matches `want`, the float64 reference. */
export function checkFirstStepLoss(what, loss, want, model) {
  if (!(Math.abs(loss - want) <= 1e-3 * (1 + Math.abs(want)))) {
    throw new Error(`${what}: first-step loss ${loss}, expected ${want.toFixed(6)} (the same ${model} on the same batch)`);
  }
}

/** Throws unless `got` equals `want` elementwise within a float32-sized tolerance. */
export function assertClose(what, got, want, tol = 1e-4) {
  if (got.length !== want.length) throw new Error(`${what}: ${got.length} values, expected ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= tol * (1 + Math.abs(want[i])))) {
      throw new Error(`${what}: element ${i} is ${got[i]}, expected ${want[i]}`);
    }
  }
}

/**
 * Reference conv2d in float64, stride 1, 'same' padding (odd kernel), no bias: x [n, c, h, w],
 * w [o, c, k, k] (NCHW, OIHW) -> [n, o, h, w]. For the correctness checks of the conv2d workloads.
 */
export function referenceConv2dSame(x, w, n, c, h, wd, o, k) {
  const out = new Float64Array(n * o * h * wd);
  const p = (k - 1) / 2;
  for (let b = 0; b < n; b++)
    for (let oc = 0; oc < o; oc++)
      for (let y = 0; y < h; y++)
        for (let xq = 0; xq < wd; xq++) {
          let s = 0;
          for (let ic = 0; ic < c; ic++)
            for (let i = 0; i < k; i++)
              for (let j = 0; j < k; j++) {
                const iy = y + i - p;
                const ix = xq + j - p;
                if (iy >= 0 && iy < h && ix >= 0 && ix < wd) s += x[((b * c + ic) * h + iy) * wd + ix] * w[((oc * c + ic) * k + i) * k + j];
              }
          out[((b * o + oc) * h + y) * wd + xq] = s;
        }
  return out;
}

/** The small case every conv2d peer is checked on before timing: [n, c, h, w, o, k] and its data. */
export function conv2dCheckCase() {
  const [n, c, h, wd, o, k] = [2, 3, 6, 5, 4, 3];
  const x = randomNormal(n * c * h * wd, 11);
  const w = randomNormal(o * c * k * k, 12);
  return { dims: [n, c, h, wd, o, k], x, w, want: referenceConv2dSame(x, w, n, c, h, wd, o, k) };
}

/**
 * Reference 2-D pooling in float64, no padding: x [n, c, h, w] (NCHW) -> [n, c, oh, ow] with
 * oh = floor((h - k) / s) + 1; `op` 'max' or 'avg'. For the checks of the pool2d workloads.
 */
export function referencePool2d(op, x, n, c, h, w, k, s) {
  const [oh, ow] = [Math.floor((h - k) / s) + 1, Math.floor((w - k) / s) + 1];
  const out = new Float64Array(n * c * oh * ow);
  for (let p = 0; p < n * c; p++)
    for (let y = 0; y < oh; y++)
      for (let xq = 0; xq < ow; xq++) {
        let acc = op === 'max' ? -Infinity : 0;
        for (let i = 0; i < k; i++)
          for (let j = 0; j < k; j++) {
            const v = x[(p * h + y * s + i) * w + xq * s + j];
            acc = op === 'max' ? Math.max(acc, v) : acc + v;
          }
        out[(p * oh + y) * ow + xq] = op === 'max' ? acc : acc / (k * k);
      }
  return out;
}

/** The small case every pool2d peer is checked on before timing: [n, c, h, w] and its data. */
export function pool2dCheckCase(op, kernel, stride) {
  const [n, c, h, w] = [2, 5, 9, 11];
  const x = randomNormal(n * c * h * w, 13);
  return { dims: [n, c, h, w], x, want: referencePool2d(op, x, n, c, h, w, kernel, stride) };
}

/**
 * One Kiln training step as a training loop writes it, for the cnn, lstm and large-model
 * workloads: in a tidy, `opt.zeroGrad()`, cross-entropy of `forward()` (logits [batch, classes])
 * against the int32 labels `y`, backward, `opt.step()`, the loss read back (a progress bar's).
 * Returns a function that runs one step and returns the loss.
 */
export function kilnStep(k, opt, forward, y) {
  return () =>
    k.tidy(() => {
      opt.zeroGrad();
      const loss = k.crossEntropy(forward(), y);
      loss.backward();
      opt.step();
      return loss.dataSync()[0];
    });
}
