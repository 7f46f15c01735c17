//! The reductions of kiln-core's ReduceOp beyond sum/mean/max/min (reduce.rs): variance (with a
//! correction), logSumExp, argmax and argmin, over any axes. One workgroup per row: each thread
//! folds a strided slice of the row, then a tree in workgroup memory; variance and logSumExp
//! make two passes over the row inside the kernel (mean then squared deviations; max then
//! sum of e^(x - max)), as kiln-core does. Their gradients are compositions of ops kiln-core
//! records (reduce, sub, mul, exp), so they need no kernel of their own.
//!
//! Differences from the CPU: variance accumulates in f32 (the CPU uses f64), so it agrees to
//! ~1e-6 relative; NaN propagates through logSumExp (tested on the bits), but argmax/argmin are
//! not promised to pick the first NaN as the CPU does.

use super::reduce::{plan, reduce, tree_functions};
use super::Params;
use crate::device::GpuDevice;
use crate::tensor::GpuTensor;
use kiln_core::error::fmt_shape;
use kiln_core::ops::ReduceOp;
use kiln_core::{DType, KilnError, Result};

/// Any ReduceOp over `axes` (empty: all) with kiln-core's shapes and dtypes: float32 results,
/// int32 for argmax/argmin (one axis at most; none indexes the flattened tensor).
/// `correction` is the variance's delta degrees of freedom.
pub fn reduce_any(dev: &GpuDevice, op: ReduceOp, x: &GpuTensor, axes: &[isize], keep_dims: bool, correction: usize) -> Result<GpuTensor> {
    let name = op.name();
    let arg = matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin);
    let body = match op {
        ReduceOp::Sum | ReduceOp::Mean | ReduceOp::Max | ReduceOp::Min => return reduce(dev, op, x, axes, keep_dims),
        ReduceOp::Variance => VARIANCE,
        ReduceOp::LogSumExp => &format!("{}{LOG_SUM_EXP_TAIL}", super::softmax::FORWARD),
        ReduceOp::ArgMax => &ARG.replace("BETTER", ">"),
        ReduceOp::ArgMin => &ARG.replace("BETTER", "<"),
    };
    x.expect_dtype(name, DType::F32)?;
    if arg && axes.len() > 1 {
        return Err(KilnError::new(name, format!("takes one axis, got {axes:?} for shape {}", fmt_shape(x.shape()))));
    }
    let pl = plan(name, x, axes, keep_dims)?;
    let out_dtype = if arg { DType::I32 } else { DType::F32 };
    if pl.len == 0 && pl.rows > 0 {
        // Empty rows: variance 0/0 = NaN, logSumExp of nothing = -inf, arg reductions undefined.
        let fill = match op {
            ReduceOp::Variance => f32::NAN,
            ReduceOp::LogSumExp => f32::NEG_INFINITY,
            _ => return Err(KilnError::new(name, format!("cannot reduce an empty dimension of shape {} (no identity)", fmt_shape(x.shape())))),
        };
        return GpuTensor::from_f32(dev, &vec![fill; pl.rows], &pl.out_shape);
    }
    let out = GpuTensor::empty(dev, name, &pl.out_shape, out_dtype)?;
    if pl.rows == 0 {
        return Ok(out);
    }
    let rows = pl.rows(dev, x)?;
    super::check_u32_range(name, rows.offset() + rows.numel())?;
    let params = Params::default().u32(pl.rows).u32(pl.len).u32(rows.offset()).f32(pl.len as f32 - correction as f32).upload(dev, name)?;
    let source = || {
        format!(
            "@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<{ty}>;
{trees}
var<workgroup> best_i: array<u32, 256>;
// params: [rows, len, offset, len - correction]; one workgroup per row.
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {{
  let row = wid.y * nwg.x + wid.x;
  if (row >= params[0]) {{ return; }}
  let len = params[1];
  let xb = params[2] + row * len;
{body}
}}
",
            ty = if arg { "i32" } else { "f32" },
            trees = tree_functions()
        )
    };
    let key = format!("reduce_more:{name}");
    dev.dispatch(name, &key, source, &[params.buffer(), rows.buffer(), out.buffer()], dev.groups_for(pl.rows))?;
    Ok(out)
}

const VARIANCE: &str = "
  var s = 0.0;
  for (var j = lid; j < len; j = j + 256u) { s = s + x[xb + j]; }
  let mean = tree_sum(lid, s) / f32(len);
  var ss = 0.0;
  for (var j = lid; j < len; j = j + 256u) { let d = x[xb + j] - mean; ss = ss + d * d; }
  let total = tree_sum(lid, ss);
  if (lid == 0u) { out[row] = total / bitcast<f32>(params[3]); }
";

/// After softmax's row body (m, total): log(total) + m.
const LOG_SUM_EXP_TAIL: &str = "
  // An infinite maximum is the answer (as on the CPU): e^(x - m) would be NaN there.
  let m_inf = (bitcast<u32>(m) & 0x7fffffffu) == 0x7f800000u;
  if (lid == 0u) { out[row] = select(m + log(total), m, m_inf); }
";

/// Each thread keeps its best (value, first index); the tree keeps the better value, and the
/// lower index on ties, so the result is the first extreme element as on the CPU.
const ARG: &str = "
  var bv = x[xb];
  var bi = 0u;
  for (var j = lid; j < len; j = j + 256u) {
    let v = x[xb + j];
    if (v BETTER bv || (v == bv && j < bi)) { bv = v; bi = j; }
  }
  // Threads past the row's end keep element 0, which never beats a real candidate.
  partial[lid] = bv;
  best_i[lid] = bi;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      let v = partial[lid + s];
      let i = best_i[lid + s];
      if (v BETTER partial[lid] || (v == partial[lid] && i < best_i[lid])) { partial[lid] = v; best_i[lid] = i; }
    }
    workgroupBarrier();
  }
  if (lid == 0u) { out[row] = i32(best_i[0]); }
";
