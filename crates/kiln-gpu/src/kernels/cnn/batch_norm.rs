//! Batch normalization over [batch, channels, ...], fused as kiln-core's ops/batch_norm.rs:
//!
//! - statistics: one workgroup per channel, two passes over its values (mean, then the centered
//!   squares: E[x²] − E[x]² cancels badly when |mean| ≫ std), tree sums in workgroup memory;
//!   the same workgroup folds the batch's statistics into the running ones (in place, unbiased
//!   variance), so training needs no extra kernel.
//! - normalization: one invocation per element, y = scale·x + shift per channel.
//! - backward: per channel Σg and Σg·x̂ (one workgroup each), then dx = a·g + k·x + b per element
//!   with kiln-core's per-channel constants.
//!
//! The saved statistics are kiln-core's: a [2, C] tensor of mean and 1/√(var + eps).

use super::{kernel_1d, operand};
use crate::device::GpuDevice;
use crate::kernels::reduce::tree_functions;
use crate::kernels::{Params, ENTRY_ARGS_1D};
use crate::tensor::GpuTensor;
use kiln_core::error::fmt_shape;
use kiln_core::ops::BatchNorm;
use kiln_core::{DType, KilnError, Result};

const OP: &str = "batchNorm";

/// Forward: (y, saved statistics [2, C]). Training (or no running statistics) normalizes with
/// the batch's statistics, and in training folds them into `running` in place: the caller has
/// made each the sole owner of a whole contiguous buffer (the backend's copy-on-write);
/// otherwise the running statistics are used.
pub fn batch_norm_in_place(dev: &GpuDevice, x: &GpuTensor, weight: Option<&GpuTensor>, bias: Option<&GpuTensor>, running: Option<(&GpuTensor, &GpuTensor)>, options: BatchNorm) -> Result<(GpuTensor, GpuTensor)> {
    let (x, c, spatial) = input(dev, x)?;
    let n = x.shape()[0];
    let vector = |what: &str, t: Option<&GpuTensor>| -> Result<Option<GpuTensor>> {
        t.map(|t| {
            if t.dtype() != DType::F32 || t.shape() != [c] {
                return Err(KilnError::new(OP, format!("{what} must be float32 [{c}], got {} {}", t.dtype(), fmt_shape(t.shape()))));
            }
            operand(dev, OP, t)
        })
        .transpose()
    };
    let (weight, bias) = (vector("weight", weight)?, vector("bias", bias)?);
    if let Some((rm, rv)) = running {
        vector("runningMean", Some(rm))?;
        vector("runningVar", Some(rv))?;
    }
    let stats = GpuTensor::empty(dev, OP, &[2, c], DType::F32)?;
    match running {
        Some((rm, rv)) if !options.training => running_stats(dev, &operand(dev, OP, rm)?, &operand(dev, OP, rv)?, &stats, c, options.eps)?,
        running => {
            let updated = running.filter(|_| options.training);
            if updated.is_some_and(|(rm, rv)| rm.offset() != 0 || rv.offset() != 0 || !rm.is_contiguous() || !rv.is_contiguous()) {
                return Err(KilnError::new(OP, "internal error: running statistics updated in place must be whole contiguous buffers"));
            }
            batch_stats_kernel(dev, &x, &stats, updated, [n, c, spatial], options, n * spatial)?;
        }
    }
    let y = GpuTensor::empty(dev, OP, x.shape(), DType::F32)?;
    let total = y.numel();
    let flags = |t: &Option<GpuTensor>| t.as_ref().map_or([0, 0], |t| [1, t.offset()]);
    let params = Params::default().u32(total).words([c, spatial, x.offset()]).words(flags(&weight)).words(flags(&bias)).upload(dev, OP)?;
    let source = || {
        kernel_1d(
            &[("read", "x: array<f32>"), ("read", "stats: array<f32>"), ("read", "w: array<f32>"), ("read", "b: array<f32>"), ("read_write", "y: array<f32>")],
            "  // params: [n, C, spatial, x offset, has weight, weight offset, has bias, bias offset]
  let C = p(1u);
  let c = (i / p(2u)) % C;
  var scale = stats[C + c];
  if (p(4u) != 0u) { scale = scale * w[p(5u) + c]; }
  var shift = -stats[c] * scale;
  if (p(6u) != 0u) { shift = shift + b[p(7u) + c]; }
  y[i] = scale * x[p(3u) + i] + shift;",
        )
    };
    // An absent weight or bias binds the statistics in its place (read, never used).
    let w_buf = weight.as_ref().map_or(stats.buffer(), |t| t.buffer());
    let b_buf = bias.as_ref().map_or(stats.buffer(), |t| t.buffer());
    dev.dispatch(OP, "bn:affine", source, &[params.buffer(), x.buffer(), stats.buffer(), w_buf, b_buf, y.buffer()], dev.groups_1d(total))?;
    Ok((y, stats))
}

/// Gradients of batch normalization from the output gradient `g`, the input `x`, the saved
/// statistics and the weight: (dx if `need_input`, dweight = Σ g·x̂ [C], dbias = Σ g [C]).
/// `batch_stats`: the forward used the batch's statistics (they then depend on x).
pub fn batch_norm_backward(dev: &GpuDevice, g: &GpuTensor, x: &GpuTensor, stats: &GpuTensor, weight: Option<&GpuTensor>, batch_stats: bool, need_input: bool) -> Result<(Option<GpuTensor>, GpuTensor, GpuTensor)> {
    let (x, c, spatial) = input(dev, x)?;
    if g.dtype() != DType::F32 || g.shape() != x.shape() || stats.shape() != [2, c] {
        return Err(KilnError::new(OP, format!("backward needs float32 g {} and statistics [2, {c}], got g {} {} and statistics {}", fmt_shape(x.shape()), g.dtype(), fmt_shape(g.shape()), fmt_shape(stats.shape()))));
    }
    let (g, stats) = (operand(dev, OP, g)?, operand(dev, OP, stats)?);
    let weight = weight.map(|w| operand(dev, OP, w)).transpose()?;
    let n = x.shape()[0];
    let sums = GpuTensor::empty(dev, OP, &[2, c], DType::F32)?;
    let params = Params::default().words([c, n, spatial, x.offset(), g.offset(), stats.offset()]).upload(dev, OP)?;
    let source = || {
        per_channel_source(
            "@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> sums: array<f32>;",
            "  // params: [C, N, spatial, x offset, g offset, stats offset]
  let mean = stats[params[5] + c];
  var sg = 0.0;
  var sd = 0.0;
  for (var j = lid; j < count; j = j + 256u) {
    let at = (j / S) * C * S + c * S + j % S;
    let gv = g[params[4] + at];
    sg = sg + gv;
    sd = sd + gv * (x[params[3] + at] - mean);
  }
  let sum_g = tree_sum(lid, sg);
  let dot = tree_sum(lid, sd);
  if (lid == 0u) {
    sums[c] = dot * stats[params[5] + C + c];
    sums[C + c] = sum_g;
  }",
        )
    };
    dev.dispatch(OP, "bn:backward_sums", source, &[params.buffer(), x.buffer(), g.buffer(), stats.buffer(), sums.buffer()], dev.groups_for(c))?;
    let dx = if need_input {
        let dx = GpuTensor::empty(dev, OP, x.shape(), DType::F32)?;
        let total = dx.numel();
        let params = Params::default()
            .u32(total)
            .words([c, spatial, x.offset(), g.offset(), stats.offset(), weight.as_ref().map_or(0, |_| 1), weight.as_ref().map_or(0, |w| w.offset()), batch_stats as usize])
            .f32((n * spatial) as f32)
            .upload(dev, OP)?;
        let source = || {
            kernel_1d(
                &[("read", "x: array<f32>"), ("read", "g: array<f32>"), ("read", "stats: array<f32>"), ("read", "sums: array<f32>"), ("read", "w: array<f32>"), ("read_write", "dx: array<f32>")],
                "  // params: [n, C, spatial, x offset, g offset, stats offset, has weight, weight offset,
  //          batch statistics, count (f32)]
  let C = p(1u);
  let c = (i / p(2u)) % C;
  let mean = stats[p(5u) + c];
  let inv_std = stats[p(5u) + C + c];
  var a = inv_std;
  if (p(6u) != 0u) { a = a * w[p(7u) + c]; }
  var k = 0.0;
  var b = 0.0;
  if (p(8u) != 0u) {
    // dx = γ/σ·(g − mean(g) − x̂·mean(g·x̂)) as a·g + k·x + b.
    let count = bitcast<f32>(p(9u));
    k = -a * inv_std * sums[c] / count;
    b = -a * sums[C + c] / count - k * mean;
  }
  dx[i] = a * g[p(4u) + i] + k * x[p(3u) + i] + b;",
            )
        };
        let w_buf = weight.as_ref().map_or(stats.buffer(), |t| t.buffer());
        let buffers = [params.buffer(), x.buffer(), g.buffer(), stats.buffer(), sums.buffer(), w_buf, dx.buffer()];
        dev.dispatch(OP, "bn:backward_input", source, &buffers, dev.groups_1d(total))?;
        Some(dx)
    } else {
        None
    };
    let row = |r: usize| sums.narrow(0, r, 1).and_then(|t| t.reshape(dev, &[c as isize]));
    Ok((dx, row(0)?, row(1)?))
}

/// x as a contiguous float32 [N, C, ...] operand, with C and the spatial size.
fn input(dev: &GpuDevice, x: &GpuTensor) -> Result<(GpuTensor, usize, usize)> {
    if x.dtype() != DType::F32 || x.rank() < 2 {
        return Err(KilnError::new(OP, format!("expected a float32 [batch, channels, ...] tensor, got {} {}", x.dtype(), fmt_shape(x.shape()))));
    }
    let spatial = x.shape()[2..].iter().product();
    Ok((operand(dev, OP, x)?, x.shape()[1], spatial))
}

/// A kernel of one workgroup per channel c (values j < count at (j / S)·C·S + c·S + j % S).
/// Params start [C, N, S]; `bindings` from binding 1 on.
fn per_channel_source(bindings: &str, body: &str) -> String {
    format!(
        "@group(0) @binding(0) var<storage, read> params: array<u32>;
{bindings}
{trees}
@compute @workgroup_size(256)
fn main({ENTRY_ARGS_1D}) {{
  let c = wid.y * nwg.x + wid.x;
  let C = params[0];
  if (c >= C) {{ return; }}
  let S = params[2];
  let count = params[1] * S;
{body}
}}
",
        trees = tree_functions()
    )
}

/// The batch's statistics into `stats`, folded into `running` when given.
fn batch_stats_kernel(dev: &GpuDevice, x: &GpuTensor, stats: &GpuTensor, running: Option<(&GpuTensor, &GpuTensor)>, [n, c, spatial]: [usize; 3], options: BatchNorm, count: usize) -> Result<()> {
    if options.training && count < 2 {
        return Err(KilnError::new(OP, format!("training needs more than one value per channel, got input {}", fmt_shape(x.shape()))));
    }
    let unbiased = count as f64 / (count as f64 - 1.0);
    let params = Params::default().words([c, n, spatial, x.offset()]).f32(options.eps).f32(options.momentum).f32(unbiased as f32).upload(dev, OP)?;
    let update = if running.is_some() {
        "
    let m = bitcast<f32>(params[5]);
    rm[c] = (1.0 - m) * rm[c] + m * mean;
    rv[c] = (1.0 - m) * rv[c] + m * variance * bitcast<f32>(params[6]);"
    } else {
        ""
    };
    let source = || {
        let mut bindings = String::from(
            "@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;",
        );
        if running.is_some() {
            bindings.push_str("\n@group(0) @binding(3) var<storage, read_write> rm: array<f32>;\n@group(0) @binding(4) var<storage, read_write> rv: array<f32>;");
        }
        let body = format!(
            "  // params: [C, N, spatial, x offset, eps, momentum, count / (count - 1)]
  var s = 0.0;
  for (var j = lid; j < count; j = j + 256u) {{ s = s + x[params[3] + (j / S) * C * S + c * S + j % S]; }}
  let mean = tree_sum(lid, s) / f32(count);
  var q = 0.0;
  for (var j = lid; j < count; j = j + 256u) {{
    let d = x[params[3] + (j / S) * C * S + c * S + j % S] - mean;
    q = q + d * d;
  }}
  let variance = tree_sum(lid, q) / f32(count);
  if (lid == 0u) {{
    stats[c] = mean;
    stats[C + c] = 1.0 / sqrt(variance + bitcast<f32>(params[4]));{update}
  }}"
        );
        per_channel_source(&bindings, &body)
    };
    let key = if running.is_some() { "bn:stats:running" } else { "bn:stats" };
    let mut buffers = vec![params.buffer(), x.buffer(), stats.buffer()];
    if let Some((rm, rv)) = running {
        buffers.extend([rm.buffer(), rv.buffer()]);
    }
    dev.dispatch(OP, key, source, &buffers, dev.groups_for(c))
}

/// Evaluation with running statistics: stats = (running mean, 1/√(running var + eps)).
fn running_stats(dev: &GpuDevice, rm: &GpuTensor, rv: &GpuTensor, stats: &GpuTensor, c: usize, eps: f32) -> Result<()> {
    let params = Params::default().u32(c).words([rm.offset(), rv.offset()]).f32(eps).upload(dev, OP)?;
    let source = || {
        kernel_1d(
            &[("read", "rm: array<f32>"), ("read", "rv: array<f32>"), ("read_write", "stats: array<f32>")],
            "  // params: [C, mean offset, var offset, eps]
  stats[i] = rm[p(1u) + i];
  stats[p(0u) + i] = 1.0 / sqrt(rv[p(2u) + i] + bitcast<f32>(p(3u)));",
        )
    };
    dev.dispatch(OP, "bn:running_stats", source, &[params.buffer(), rm.buffer(), rv.buffer(), stats.buffer()], dev.groups_1d(c))
}
