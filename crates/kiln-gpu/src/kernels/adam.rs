//! The fused Adam / AdamW update: one kernel reads a parameter, its gradient and both moments
//! once and writes the parameter and moments in place, with kiln-core's gradient transform
//! (global-norm scale, clip by value, L2 decay) folded in. Same formula, same order of operations
//! as kiln-core's optim.rs, so results agree to float rounding.

use super::{check_u32_range, Params, ENTRY_ARGS_1D, LINEAR_INDEX};
use crate::device::GpuDevice;
use crate::tensor::GpuTensor;
use kiln_core::optim::{GradTransform, Rule};
use kiln_core::{KilnError, Result};

/// The update itself, writing `param` and `state` in place: the caller has made each of them
/// the sole owner of a whole contiguous buffer (the backend's copy-on-write for kiln-core tensors).
pub(crate) fn adam_in_place(dev: &GpuDevice, rule: Rule, transform: GradTransform, param: &GpuTensor, grad: &GpuTensor, state: &[GpuTensor]) -> Result<()> {
    let Rule::Adam { lr, beta1, beta2, eps, decoupled_decay, step } = rule else {
        return Err(KilnError::new(rule.name(), "has no GPU kernel yet (adam does)"));
    };
    const OP: &str = "adam";
    let g = grad.contiguous(dev)?;
    let n = param.numel();
    check_u32_range(OP, g.end_index())?;
    let c1 = 1.0 - beta1.powi(step as i32);
    let c2 = 1.0 - beta2.powi(step as i32);
    // WGSL may assume no infinities reach an op: "no clipping" is sent as the largest finite value.
    let clip = transform.clip_value.min(f32::MAX);
    let params = Params::default()
        .u32(n)
        .u32(g.offset())
        .f32(lr).f32(beta1).f32(beta2).f32(eps).f32(decoupled_decay).f32(c1).f32(c2)
        .f32(transform.scale).f32(clip).f32(transform.weight_decay)
        .upload(dev, OP)?;
    let source = || {
        format!(
            "@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> p: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
fn f(i: u32) -> f32 {{ return bitcast<f32>(params[i]); }}
// params: [n, grad offset, lr, beta1, beta2, eps, decay, c1, c2, scale, clip, weight decay]
@compute @workgroup_size(256)
fn main({ENTRY_ARGS_1D}) {{
  let i = {LINEAR_INDEX};
  if (i >= params[0]) {{ return; }}
  let pv = p[i];
  // A NaN gradient stays NaN, as on the CPU (WGSL's clamp may turn it into a bound): tested on the bits.
  let gs = grad[params[1] + i] * f(9u);
  let d = select(clamp(gs, -f(10u), f(10u)), gs, (bitcast<u32>(gs) & 0x7fffffffu) > 0x7f800000u) + f(11u) * pv;
  let mv = f(3u) * m[i] + (1.0 - f(3u)) * d;
  let vv = f(4u) * v[i] + (1.0 - f(4u)) * d * d;
  m[i] = mv;
  v[i] = vv;
  let m_hat = mv / f(7u);
  let v_hat = vv / f(8u);
  p[i] = pv * (1.0 - f(2u) * f(6u)) - f(2u) * m_hat / (sqrt(v_hat) + f(5u));
}}
"
        )
    };
    let buffers = [params.buffer(), g.buffer(), param.buffer(), state[0].buffer(), state[1].buffer()];
    dev.dispatch(OP, "adam", source, &buffers, dev.groups_1d(n))
}
