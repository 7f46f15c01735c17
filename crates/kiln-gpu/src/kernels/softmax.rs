//! softmax and logSoftmax along an axis, forward and backward, one workgroup per row: a tree max,
//! a tree sum of e^(x - max), then the write, all in one kernel (three passes over a row that stays
//! in cache). Other axes are moved last first (a copy), as kiln-core does.
//!
//! Backward is fused the same way: softmax dx = y (g - sum(g y)); logSoftmax dx = g - e^y sum(g).

use super::reduce::tree_functions;
use super::{check_u32_range, Params};
use crate::device::GpuDevice;
use crate::tensor::GpuTensor;
use kiln_core::layout;
use kiln_core::{DType, KilnError, Result};

fn name(log: bool) -> &'static str {
    if log { "logSoftmax" } else { "softmax" }
}

/// softmax (or logSoftmax when `log`) along `axis`: any shape -> the same shape, float32.
pub fn softmax(dev: &GpuDevice, x: &GpuTensor, axis: isize, log: bool) -> Result<GpuTensor> {
    let op = name(log);
    x.expect_dtype(op, DType::F32)?;
    along_last(dev, op, x, axis, |rows| {
        let (xc, len) = (&rows[0], rows[0].shape()[1]);
        let write = if log { "x[xb + j] - m - log(total)" } else { "exp(x[xb + j] - m) / total" };
        run_rows(dev, op, &format!("softmax:{op}"), xc, None, len, FORWARD, write)
    })
}

/// The gradient of softmax / logSoftmax along `axis` from its output `y` and the output gradient `g`.
pub fn softmax_backward(dev: &GpuDevice, y: &GpuTensor, g: &GpuTensor, axis: isize, log: bool) -> Result<GpuTensor> {
    let op = name(log);
    if y.dtype() != DType::F32 || g.dtype() != DType::F32 || y.shape() != g.shape() {
        return Err(KilnError::new(op, format!("backward needs float32 y and g of one shape, got {} {:?} and {} {:?}", y.dtype(), y.shape(), g.dtype(), g.shape())));
    }
    along_last_many(dev, op, &[y.clone(), g.clone()], axis, |rows| {
        let len = rows[0].shape()[1];
        let (reduce, write) = if log {
            ("g[gb + j]", "g[gb + j] - exp(x[xb + j]) * total")
        } else {
            ("g[gb + j] * x[xb + j]", "x[xb + j] * (g[gb + j] - total)")
        };
        let body = BACKWARD.replace("TERM", reduce);
        run_rows(dev, op, &format!("softmax_backward:{op}"), &rows[0], Some(&rows[1]), len, &body, write)
    })
}

/// Row body of the forward kernel: m (row max, NaN if the row has one) and total (sum of
/// e^(x - m)). logSumExp (reduce_more.rs) starts with the same body.
pub(crate) const FORWARD: &str = "
  var mx = -from_bits(0x7f800000u);
  for (var j = lid; j < len; j = j + 256u) { mx = nan_max(mx, x[xb + j]); }
  let m = tree_max(lid, mx);
  var s = 0.0;
  for (var j = lid; j < len; j = j + 256u) { s = s + exp(x[xb + j] - m); }
  let total = tree_sum(lid, s);
";

/// Row body of the backward kernel (x holds y): total = sum over the row of TERM.
const BACKWARD: &str = "
  var s = 0.0;
  for (var j = lid; j < len; j = j + 256u) { s = s + TERM; }
  let total = tree_sum(lid, s);
";

fn along_last(dev: &GpuDevice, op: &str, x: &GpuTensor, axis: isize, f: impl FnOnce(&[GpuTensor]) -> Result<GpuTensor>) -> Result<GpuTensor> {
    along_last_many(dev, op, std::slice::from_ref(x), axis, f)
}

/// Moves `axis` last in every tensor, views them as contiguous [rows, len], runs `f`, and moves
/// the axis back in the result.
fn along_last_many(dev: &GpuDevice, op: &str, ts: &[GpuTensor], axis: isize, f: impl FnOnce(&[GpuTensor]) -> Result<GpuTensor>) -> Result<GpuTensor> {
    let shape = ts[0].shape().to_vec();
    let rank = shape.len();
    if rank == 0 {
        // A scalar is a one-element row.
        let rows: Vec<GpuTensor> = ts.iter().map(|t| t.reshape(dev, &[1, 1])).collect::<Result<_>>()?;
        return f(&rows)?.reshape(dev, &[]);
    }
    let axis = layout::normalize_axis(op, axis, rank)?;
    let mut perm: Vec<usize> = (0..rank).filter(|&d| d != axis).collect();
    perm.push(axis);
    let len = shape[axis];
    let rows_n = ts[0].numel().checked_div(len).unwrap_or(0);
    let rows: Vec<GpuTensor> = ts
        .iter()
        .map(|t| t.permute(&perm)?.contiguous(dev)?.reshape(dev, &[rows_n as isize, len as isize]))
        .collect::<Result<_>>()?;
    let out = f(&rows)?;
    let moved_shape: Vec<isize> = perm.iter().map(|&p| shape[p] as isize).collect();
    let mut inverse = vec![0usize; rank];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i;
    }
    out.reshape(dev, &moved_shape)?.permute(&inverse)?.contiguous(dev)
}

/// One workgroup per row of contiguous [rows, len] `x` (and `g`): runs `body`, then writes
/// `write` for every element of the row.
#[allow(clippy::too_many_arguments)]
fn run_rows(dev: &GpuDevice, op: &str, key: &str, x: &GpuTensor, g: Option<&GpuTensor>, len: usize, body: &str, write: &str) -> Result<GpuTensor> {
    let rows = x.shape()[0];
    let out = GpuTensor::empty(dev, op, x.shape(), DType::F32)?;
    if rows == 0 || len == 0 {
        return Ok(out);
    }
    check_u32_range(op, x.offset() + x.numel())?;
    let g_off = g.map_or(0, |g| g.offset());
    let params = Params::default().u32(rows).u32(len).u32(x.offset()).u32(g_off).upload(dev, op)?;
    let g_binding = if g.is_some() { "@group(0) @binding(3) var<storage, read> g: array<f32>;\n" } else { "" };
    let source = || {
        format!(
            "@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
{g_binding}{trees}
// params: [rows, len, x offset, g offset]; one workgroup per row.
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {{
  let row = wid.y * nwg.x + wid.x;
  if (row >= params[0]) {{ return; }}
  let len = params[1];
  let xb = params[2] + row * len;
  let gb = params[3] + row * len;
  let ob = row * len;
  {body}
  for (var j = lid; j < len; j = j + 256u) {{ out[ob + j] = {write}; }}
}}
",
            trees = tree_functions()
        )
    };
    let mut buffers = vec![params.buffer(), x.buffer(), out.buffer()];
    if let Some(g) = g {
        buffers.push(g.buffer());
    }
    dev.dispatch(op, key, source, &buffers, dev.groups_for(rows))?;
    Ok(out)
}
