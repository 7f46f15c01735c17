//! Cross-entropy from logits (kiln-core's ops/loss.rs), forward and backward: class weights,
//! label smoothing, none/mean/sum reduction, int32 targets. One workgroup per row computes the
//! row's log-sum-exp and the weighted sums the loss needs (never materializing the
//! log-probabilities); the backward kernel writes p * sum_k w_k q_k - w_c q_c per element.
//! Targets are checked on the device (checks.rs): a bad one is clamped and reported at the next
//! readback, with kiln-core's message.

use super::creation::full;
use super::elementwise::binary;
use super::index::gather;
use super::reduce::{reduce, tree_functions};
use super::Params;
use crate::checks;
use crate::device::GpuDevice;
use crate::tensor::GpuTensor;
use kiln_core::error::fmt_shape;
use kiln_core::ops::loss::{cross_entropy_shape, target_out_of_range};
use kiln_core::ops::{BinaryOp, ReduceOp, Reduction};
use kiln_core::{DType, KilnError, Result};

const OP: &str = "crossEntropy";

/// kiln-core's checks (cross_entropy_shape) on the GPU tensors; returns (rows, classes).
fn validate(logits: &GpuTensor, targets: &GpuTensor, weights: Option<&GpuTensor>, smoothing: f32) -> Result<(usize, usize)> {
    cross_entropy_shape((logits.shape(), logits.dtype()), (targets.shape(), targets.dtype()), weights.map(|w| (w.shape(), w.dtype())), smoothing)
}

/// The loss: [N] for Reduction::None, else a scalar (mean divides by the sum of the targets'
/// weights, as PyTorch does).
pub fn cross_entropy(dev: &GpuDevice, logits: &GpuTensor, targets: &GpuTensor, weights: Option<&GpuTensor>, smoothing: f32, reduction: Reduction) -> Result<GpuTensor> {
    let (n, c) = validate(logits, targets, weights, smoothing)?;
    // losses [N] and the target's weight per row [N] (for the mean's denominator).
    let losses = GpuTensor::empty(dev, OP, &[n], DType::F32)?;
    let target_w = GpuTensor::empty(dev, OP, &[n], DType::F32)?;
    let write = "
  if (lid == 0u) {
    // Zero factors are skipped, not multiplied: 0 * -Inf would be NaN (as in kiln-core's loss.rs).
    out[row] = lse * wq_sum - (select(0.0, off * wx, off != 0.0) + select(0.0, (on - off) * w_t * x[xb + t], w_t != 0.0));
    out2[row] = w_t;
  }";
    run_rows(dev, "cross_entropy", logits, targets, weights, None, &[&losses, &target_w], smoothing, c, write)?;
    match reduction {
        Reduction::None => Ok(losses),
        Reduction::Sum => reduce(dev, ReduceOp::Sum, &losses, &[], false),
        Reduction::Mean => {
            let total = reduce(dev, ReduceOp::Sum, &losses, &[], false)?;
            binary(dev, BinaryOp::Div, &total, &reduce(dev, ReduceOp::Sum, &target_w, &[], false)?)
        }
    }
}

/// The gradient for the logits given the loss's gradient `g` ([N] for Reduction::None, else a
/// scalar) -> [N, C].
pub fn cross_entropy_backward(dev: &GpuDevice, logits: &GpuTensor, targets: &GpuTensor, weights: Option<&GpuTensor>, smoothing: f32, reduction: Reduction, g: &GpuTensor) -> Result<GpuTensor> {
    let (n, c) = validate(logits, targets, weights, smoothing)?;
    let want: &[usize] = if reduction == Reduction::None { &[n] } else { &[] };
    if g.dtype() != DType::F32 || g.shape() != want {
        return Err(KilnError::new(OP, format!("backward needs a float32 gradient of shape {}, got {} {}", fmt_shape(want), g.dtype(), fmt_shape(g.shape()))));
    }
    // Per-row scale of the gradient: g[row] (none), g (sum), g / sum of the targets' weights (mean).
    let scale = match (reduction, weights) {
        (Reduction::None, _) | (Reduction::Sum, _) => g.clone(),
        (Reduction::Mean, None) => binary(dev, BinaryOp::Div, g, &full(dev, &[], n as f64, DType::F32)?)?,
        (Reduction::Mean, Some(w)) => {
            let denominator = reduce(dev, ReduceOp::Sum, &gather(dev, w, targets, 0)?, &[], false)?;
            binary(dev, BinaryOp::Div, g, &denominator)?
        }
    };
    let out = GpuTensor::empty(dev, OP, &[n, c], DType::F32)?;
    let per_row = reduction == Reduction::None;
    let write = format!(
        "
  let gi = gs[{}];
  for (var k = lid; k < len; k = k + 256u) {{
    let q = select(off, on, k == t);
    out[row * len + k] = gi * (exp(x[xb + k] - m) / total * wq_sum - w(k) * q);
  }}",
        if per_row { "p(4u) + row" } else { "p(4u)" }
    );
    let key = format!("cross_entropy_backward:{}", if per_row { "rows" } else { "scalar" });
    run_rows(dev, &key, logits, targets, weights, Some(&scale), &[&out], smoothing, c, &write)?;
    Ok(out)
}

/// One workgroup per row of logits [N, C]: computes m (row max), total (sum e^(x - m)), lse,
/// wsum / wx (sums of w and w x over the row), t (the checked target), w_t, wq_sum, then runs
/// `write`, which stores into `out` (and `out2`). `scale` binds as `gs` when given.
#[allow(clippy::too_many_arguments)]
fn run_rows(dev: &GpuDevice, key: &str, logits: &GpuTensor, targets: &GpuTensor, weights: Option<&GpuTensor>, scale: Option<&GpuTensor>, outs: &[&GpuTensor], smoothing: f32, c: usize, write: &str) -> Result<()> {
    let n = logits.shape()[0];
    if n == 0 {
        return Ok(());
    }
    let x = logits.contiguous(dev)?;
    let t = targets.contiguous(dev)?;
    let w = weights.map(|w| w.contiguous(dev)).transpose()?;
    let s = scale.map(|s| s.contiguous(dev)).transpose()?;
    super::check_u32_range(OP, x.end_index())?;
    let off = smoothing / c as f32;
    let on = 1.0 - smoothing + off;
    // params: [rows, classes, x offset, target offset, scale offset, weight offset, off, on, check id]
    let params = Params::default()
        .u32(n).u32(c).u32(x.offset()).u32(t.offset())
        .u32(s.as_ref().map_or(0, |s| s.offset())).u32(w.as_ref().map_or(0, |w| w.offset()))
        .f32(off).f32(on);
    let mut decls = String::from(
        "@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
",
    );
    let mut buffers: Vec<&wgpu::Buffer> = vec![x.buffer(), t.buffer(), outs[0].buffer()];
    for (name, ty, b) in [("out2", "read_write", outs.get(1).map(|o| o.buffer())), ("gs", "read", s.as_ref().map(|s| s.buffer())), ("wts", "read", w.as_ref().map(|w| w.buffer()))] {
        if let Some(b) = b {
            decls.push_str(&format!("@group(0) @binding({}) var<storage, {ty}> {name}: array<f32>;\n", buffers.len() + 1));
            buffers.push(b);
        }
    }
    decls.push_str(if w.is_some() { "fn w(k: u32) -> f32 { return wts[p(5u) + k]; }\n" } else { "fn w(k: u32) -> f32 { return 1.0; }\n" });
    let template = target_out_of_range("{value}", "{position}", c);
    let key = format!("{key}:{}", if w.is_some() { "weighted" } else { "plain" });
    dev.with_index_check(OP, template, |id, errors| {
        let checks = checks::wgsl(buffers.len() as u32 + 1, 8);
        let params = params.u32(id as usize).upload(dev, OP)?;
        let source = || {
            format!(
                "@group(0) @binding(0) var<storage, read> params: array<u32>;
fn p(k: u32) -> u32 {{ return params[k]; }}
fn pf(k: u32) -> f32 {{ return bitcast<f32>(params[k]); }}
{decls}{checks}{trees}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {{
  let row = wid.y * nwg.x + wid.x;
  if (row >= p(0u)) {{ return; }}
  let len = p(1u);
  let xb = p(2u) + row * len;
  let off = pf(6u);
  let on = pf(7u);
  var mx = -from_bits(0x7f800000u);
  var ws = 0.0;
  var wxs = 0.0;
  for (var j = lid; j < len; j = j + 256u) {{ let v = x[xb + j]; mx = max(mx, v); ws = ws + w(j); wxs = wxs + select(0.0, w(j) * v, w(j) != 0.0); }}
  let m = tree_max(lid, mx);
  let wsum = tree_sum(lid, ws);
  let wx = tree_sum(lid, wxs);
  var s = 0.0;
  for (var j = lid; j < len; j = j + 256u) {{ s = s + exp(x[xb + j] - m); }}
  let total = tree_sum(lid, s);
  let lse = m + log(total);
  let t = checked(targets[p(3u) + row], len, row);
  let w_t = w(t);
  let wq_sum = off * wsum + (on - off) * w_t;
{write}
}}
",
                trees = tree_functions()
            )
        };
        let mut all = vec![params.buffer()];
        all.extend_from_slice(&buffers);
        all.push(errors);
        dev.dispatch(OP, &key, source, &all, dev.groups_for(n))
    })
}
