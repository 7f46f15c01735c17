//! The CPU's fused optimizer updates: one pass over a parameter, its gradient and its state per
//! step, in place (copy-on-write, see Tensor::data_mut_f32), with clipping by value and the
//! global-norm factor folded in. Shapes are checked by optim.rs.

use crate::error::Result;
use crate::multiversion;
use crate::parallel;
use crate::params::optim::{GradTransform, Rule};
use crate::tensor::Tensor;

#[inline(always)]
fn transformed(g: f32, p: f32, t: GradTransform) -> f32 {
    (g * t.scale).clamp(-t.clip_value, t.clip_value) + t.weight_decay * p
}

multiversion! {
    fn sgd_kernel(p: &mut [f32], g: &[f32], buf: &mut [f32], t: GradTransform, lr: f32, momentum: f32, dampening: f32, nesterov: bool, first: bool) {
        if buf.is_empty() {
            for (pv, &gv) in p.iter_mut().zip(g) {
                *pv -= lr * transformed(gv, *pv, t);
            }
            return;
        }
        for ((pv, &gv), bv) in p.iter_mut().zip(g).zip(buf.iter_mut()) {
            let d = transformed(gv, *pv, t);
            *bv = if first { d } else { momentum * *bv + (1.0 - dampening) * d };
            let step = if nesterov { d + momentum * *bv } else { *bv };
            *pv -= lr * step;
        }
    }
}

multiversion! {
    fn adam_kernel(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], t: GradTransform, lr: f32, beta1: f32, beta2: f32, eps: f32, decay: f32, c1: f32, c2: f32) {
        for (((pv, &gv), mv), vv) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let d = transformed(gv, *pv, t);
            *mv = beta1 * *mv + (1.0 - beta1) * d;
            *vv = beta2 * *vv + (1.0 - beta2) * d * d;
            let m_hat = *mv / c1;
            let v_hat = *vv / c2;
            *pv = *pv * (1.0 - lr * decay) - lr * m_hat / (v_hat.sqrt() + eps);
        }
    }
}

multiversion! {
    fn rms_kernel(p: &mut [f32], g: &[f32], s: &mut [f32], t: GradTransform, lr: f32, alpha: f32, eps: f32, adagrad: bool) {
        for ((pv, &gv), sv) in p.iter_mut().zip(g).zip(s.iter_mut()) {
            let d = transformed(gv, *pv, t);
            *sv = if adagrad { *sv + d * d } else { alpha * *sv + (1.0 - alpha) * d * d };
            *pv -= lr * d / (sv.sqrt() + eps);
        }
    }
}

/// One step of `rule` on `param` and its `state` (see optim::step).
pub(crate) fn step(rule: Rule, transform: GradTransform, param: &mut Tensor, grad: &Tensor, state: &mut [Tensor]) -> Result<()> {
    let op = rule.name();
    let g = grad.materialize()?;
    let g = g.cpu_slice::<f32>(op)?;
    let p = param.data_mut_f32(op)?;
    let mut slots: Vec<&mut [f32]> = Vec::with_capacity(state.len());
    for s in state.iter_mut() {
        slots.push(s.data_mut_f32(op)?);
    }
    // Chunks of the parameter are independent, so large parameters update on every thread.
    let n = p.len();
    let chunks = parallel::chunk_count(n);
    let len = n.div_ceil(chunks.max(1)).max(1);
    let pp = parallel::SendPtr(p.as_mut_ptr());
    let sp: Vec<parallel::SendPtr<f32>> = slots.iter_mut().map(|s| parallel::SendPtr(s.as_mut_ptr())).collect();
    parallel::for_each_chunk(n.div_ceil(len), n.div_ceil(len), |c, _| {
        let (lo, hi) = (c * len, ((c + 1) * len).min(n));
        // SAFETY: chunks are disjoint ranges of buffers of length n owned by this call.
        let part = |ptr: parallel::SendPtr<f32>| unsafe { std::slice::from_raw_parts_mut(ptr.get().add(lo), hi - lo) };
        let (p, g) = (part(pp), &g[lo..hi]);
        match rule {
            Rule::Sgd { lr, momentum, dampening, nesterov, first_step } => {
                let mut none: [f32; 0] = [];
                let buf = if momentum != 0.0 { part(sp[0]) } else { &mut none[..] };
                sgd_kernel(p, g, buf, transform, lr, momentum, dampening, nesterov, first_step)
            }
            Rule::Adam { lr, beta1, beta2, eps, decoupled_decay, step } => {
                let c1 = 1.0 - beta1.powi(step as i32);
                let c2 = 1.0 - beta2.powi(step as i32);
                adam_kernel(p, g, part(sp[0]), part(sp[1]), transform, lr, beta1, beta2, eps, decoupled_decay, c1, c2)
            }
            Rule::RmsProp { lr, alpha, eps } => rms_kernel(p, g, part(sp[0]), transform, lr, alpha, eps, false),
            Rule::AdaGrad { lr, eps } => rms_kernel(p, g, part(sp[0]), transform, lr, 0.0, eps, true),
        }
    });
    Ok(())
}
