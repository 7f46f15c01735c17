/**
 * Float64 reference optimizers and schedules, written from PyTorch's documented update rules
 * (torch.optim.SGD / Adam / AdamW / RMSprop / Adagrad, clip_grad_norm_, StepLR,
 * ReduceLROnPlateau) rather than from Kiln's code. State is per parameter and created at the
 * parameter's first gradient, as in PyTorch.
 */

export type RuleName = 'sgd' | 'adam' | 'adamw' | 'rmsprop' | 'adagrad';

export interface ReferenceHyper {
  lr: number;
  weightDecay?: number;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  beta1?: number;
  beta2?: number;
  eps?: number;
  alpha?: number;
  clipNorm?: number;
  clipValue?: number;
}

interface ParamState {
  step: number;
  /** momentum buffer (sgd), exp_avg (adam), square_avg (rmsprop), sum (adagrad) */
  a: number[];
  /** exp_avg_sq (adam) */
  b: number[];
}

/** Default eps per rule, as PyTorch. */
const EPS: Record<RuleName, number> = { sgd: 0, adam: 1e-8, adamw: 1e-8, rmsprop: 1e-8, adagrad: 1e-10 };

export class ReferenceOptimizer {
  readonly params: number[][];
  private readonly state: Array<ParamState | null>;
  /** lr per parameter = base lr · lrScale[i] (param groups). */
  lr: number;

  constructor(
    readonly rule: RuleName,
    initial: number[][],
    readonly hyper: ReferenceHyper,
    readonly lrScale: number[] = initial.map(() => 1),
    readonly weightDecays: number[] = initial.map(() => hyper.weightDecay ?? (rule === 'adamw' ? 0.01 : 0)),
  ) {
    this.params = initial.map((p) => [...p]);
    this.state = initial.map(() => null);
    this.lr = hyper.lr;
  }

  /** One update; grads[i] null means parameter i had no gradient this step. */
  step(grads: Array<number[] | null>): void {
    const h = this.hyper;
    let clipCoef = 1;
    if (h.clipNorm !== undefined) {
      // torch.nn.utils.clip_grad_norm_: one norm over all gradients, coef clamped to 1
      const total = Math.sqrt(grads.reduce((s, g) => s + (g ?? []).reduce((t, v) => t + v * v, 0), 0));
      clipCoef = Math.min(1, h.clipNorm / (total + 1e-6));
    }
    const clipValue = h.clipValue ?? Infinity;
    grads.forEach((raw, i) => {
      if (raw === null) return;
      const p = this.params[i];
      const n = p.length;
      const st = (this.state[i] ??= { step: 0, a: new Array(n).fill(0), b: new Array(n).fill(0) });
      st.step++;
      const lr = this.lr * this.lrScale[i];
      const wd = this.weightDecays[i];
      const clipped = raw.map((v) => Math.min(clipValue, Math.max(-clipValue, v * clipCoef)));
      const g = this.rule === 'adamw' ? clipped : clipped.map((v, j) => v + wd * p[j]);
      const eps = h.eps ?? EPS[this.rule];
      switch (this.rule) {
        case 'sgd': {
          const m = h.momentum ?? 0;
          const damp = h.dampening ?? 0;
          for (let j = 0; j < n; j++) {
            let d = g[j];
            if (m !== 0) {
              st.a[j] = st.step === 1 ? d : m * st.a[j] + (1 - damp) * d;
              d = h.nesterov ? d + m * st.a[j] : st.a[j];
            }
            p[j] -= lr * d;
          }
          break;
        }
        case 'adam':
        case 'adamw': {
          const [b1, b2] = [h.beta1 ?? 0.9, h.beta2 ?? 0.999];
          for (let j = 0; j < n; j++) {
            if (this.rule === 'adamw') p[j] *= 1 - lr * wd;
            st.a[j] = b1 * st.a[j] + (1 - b1) * g[j];
            st.b[j] = b2 * st.b[j] + (1 - b2) * g[j] * g[j];
            const mHat = st.a[j] / (1 - b1 ** st.step);
            const vHat = st.b[j] / (1 - b2 ** st.step);
            p[j] -= (lr * mHat) / (Math.sqrt(vHat) + eps);
          }
          break;
        }
        case 'rmsprop': {
          const alpha = h.alpha ?? 0.99;
          for (let j = 0; j < n; j++) {
            st.a[j] = alpha * st.a[j] + (1 - alpha) * g[j] * g[j];
            p[j] -= (lr * g[j]) / (Math.sqrt(st.a[j]) + eps);
          }
          break;
        }
        case 'adagrad': {
          for (let j = 0; j < n; j++) {
            st.a[j] += g[j] * g[j];
            p[j] -= (lr * g[j]) / (Math.sqrt(st.a[j]) + eps);
          }
          break;
        }
      }
    });
  }

  /** The state vectors of parameter i, in Kiln's slot order (sgd: [buf], adam: [m, v], rms/adagrad: [s]). */
  slots(i: number): number[][] {
    const st = this.state[i];
    if (st === null) return [];
    if (this.rule === 'adam' || this.rule === 'adamw') return [st.a, st.b];
    if (this.rule === 'sgd' && !(this.hyper.momentum ?? 0)) return [];
    return [st.a];
  }
}

// ---- schedules ---------------------------------------------------------------------------------

/** StepLR: lr after `epoch` steps. */
export const stepDecayLr = (base: number, stepSize: number, gamma: number, epoch: number): number => base * gamma ** Math.floor(epoch / stepSize);

/**
 * PyTorch's ReduceLROnPlateau (threshold_mode 'rel'), replayed over a metric sequence.
 * Returns the lr after each step.
 */
export function plateauLrs(
  base: number,
  metrics: number[],
  o: { mode?: 'min' | 'max'; factor?: number; patience?: number; threshold?: number; minLr?: number; cooldown?: number } = {},
): number[] {
  const mode = o.mode ?? 'min';
  const [factor, patience, threshold, minLr, cooldown] = [o.factor ?? 0.1, o.patience ?? 10, o.threshold ?? 1e-4, o.minLr ?? 0, o.cooldown ?? 0];
  let best = mode === 'min' ? Infinity : -Infinity;
  let bad = 0;
  let cooldownCounter = 0;
  let lr = base;
  const out: number[] = [];
  for (const m of metrics) {
    const better = mode === 'min' ? m < best * (1 - threshold) : m > best * (1 + threshold);
    if (better) {
      best = m;
      bad = 0;
    } else {
      bad++;
    }
    if (cooldownCounter > 0) {
      cooldownCounter--;
      bad = 0;
    }
    if (bad > patience) {
      const next = Math.max(lr * factor, minLr);
      if (lr - next > 1e-8) lr = next;
      cooldownCounter = cooldown;
      bad = 0;
    }
    out.push(lr);
  }
  return out;
}
