//! The fused optimizer updates other than Adam (adam.rs): SGD (plain, momentum, Nesterov),
//! RMSProp and AdaGrad, each one kernel that reads the parameter, its gradient and its state
//! once and writes them in place, with kiln-core's gradient transform (global-norm scale, clip by
//! value, L2 decay) folded in. Same formulas in the same order as kiln-core's optim.rs.

use super::launch::{run_1d, Kernel};
use super::{adam, Params};
use crate::device::GpuDevice;
use crate::tensor::GpuTensor;
use kiln_core::error::fmt_shape;
use kiln_core::optim::{GradTransform, Rule};
use kiln_core::{DType, KilnError, Result};

fn validate(rule: Rule, param: &GpuTensor, grad: &GpuTensor, state: &[GpuTensor]) -> Result<()> {
    let op = rule.name();
    if grad.shape() != param.shape() {
        return Err(KilnError::new(op, format!("gradient shape {} does not match parameter shape {}", fmt_shape(grad.shape()), fmt_shape(param.shape()))));
    }
    if state.len() != rule.state_count() || state.iter().any(|s| s.shape() != param.shape()) {
        return Err(KilnError::new(op, format!("expected {} state tensors of shape {}", rule.state_count(), fmt_shape(param.shape()))));
    }
    for t in std::iter::once(param).chain([grad]).chain(state) {
        t.expect_dtype(op, DType::F32)?;
    }
    Ok(())
}

/// The update itself, writing `param` and `state` in place: the caller has made each the sole
/// owner of a whole contiguous buffer (the backend's copy-on-write).
pub(crate) fn optim_in_place(dev: &GpuDevice, rule: Rule, transform: GradTransform, param: &GpuTensor, grad: &GpuTensor, state: &[GpuTensor]) -> Result<()> {
    if let Rule::Adam { .. } = rule {
        return adam::adam_in_place(dev, rule, transform, param, grad, state);
    }
    validate(rule, param, grad, state)?;
    let op = rule.name();
    let g = grad.contiguous(dev)?;
    super::check_u32_range(op, g.end_index())?;
    let n = param.numel();
    // WGSL may assume no infinities reach an op: "no clipping" is the largest finite value.
    let clip = transform.clip_value.min(f32::MAX);
    // params: [n, grad offset, scale, clip, weight decay, then the rule's own words from 5]
    let params = Params::default().u32(n).u32(g.offset()).f32(transform.scale).f32(clip).f32(transform.weight_decay);
    let (key, params, update) = match rule {
        Rule::Sgd { lr, momentum: 0.0, .. } => ("sgd", params.f32(lr), "  param[i] = pv - pf(5u) * d;"),
        Rule::Sgd { lr, momentum, dampening, nesterov, first_step } => (
            "sgd_momentum",
            params.f32(lr).f32(momentum).f32(dampening).u32(nesterov as usize).u32(first_step as usize),
            "  let b = select(pf(6u) * s0[i] + (1.0 - pf(7u)) * d, d, p(9u) != 0u);
  s0[i] = b;
  param[i] = pv - pf(5u) * select(b, d + pf(6u) * b, p(8u) != 0u);",
        ),
        Rule::RmsProp { lr, alpha, eps } => (
            "rmsprop",
            params.f32(lr).f32(alpha).f32(eps),
            "  let s = pf(6u) * s0[i] + (1.0 - pf(6u)) * d * d;
  s0[i] = s;
  param[i] = pv - pf(5u) * d / (sqrt(s) + pf(7u));",
        ),
        Rule::AdaGrad { lr, eps } => (
            "adagrad",
            params.f32(lr).f32(eps),
            "  let s = s0[i] + d * d;
  s0[i] = s;
  param[i] = pv - pf(5u) * d / (sqrt(s) + pf(6u));",
        ),
        Rule::Adam { .. } => unreachable!("handled above"),
    };
    let state_binding = if state.is_empty() { "" } else { "@group(0) @binding(3) var<storage, read_write> s0: array<f32>;" };
    let decls = format!(
        "@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
{state_binding}"
    );
    // A NaN gradient stays NaN, as on the CPU (WGSL's clamp may turn it into a bound): tested on the bits.
    let body = format!("  let pv = param[i];\n  let gs = grad[p(1u) + i] * pf(2u);\n  let d = select(clamp(gs, -pf(3u), pf(3u)), gs, (bitcast<u32>(gs) & 0x7fffffffu) > 0x7f800000u) + pf(4u) * pv;\n{update}");
    let key = format!("optim:{key}");
    let mut buffers = vec![g.buffer(), param.buffer()];
    buffers.extend(state.iter().map(|s| s.buffer()));
    run_1d(dev, Kernel { op, key: &key, decls: &decls, body: &body, check: None }, n, params, &buffers)
}
