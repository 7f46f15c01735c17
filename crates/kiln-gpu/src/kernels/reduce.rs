//! Sum, mean, max and min over any set of axes. The reduced axes are moved last (a view, copied
//! to contiguous if needed, as kiln-core does), so every reduction is over contiguous rows: one
//! workgroup per row (or per chunk of a long row), each thread folding a strided slice of the row,
//! then a tree reduction in workgroup memory. Rows longer than CHUNK with few rows are cut into
//! chunks reduced in a second pass, so a full reduction of a large tensor still uses many
//! workgroups instead of one.

use super::{check_u32_range, Params, ENTRY_ARGS_1D, LINEAR_INDEX};
use crate::device::GpuDevice;
use crate::tensor::GpuTensor;
use kiln_core::error::fmt_shape;
use kiln_core::layout;
use kiln_core::ops::ReduceOp;
use kiln_core::{DType, KilnError, Result};

/// Elements one workgroup folds per chunk when a row is split (16 per thread).
const CHUNK: usize = 4096;
/// Below this many rows, long rows are split into chunks to give the device enough workgroups.
const FEW_ROWS: usize = 256;
/// Rows this short are folded by one thread each, serially, instead of a workgroup each: 256
/// threads and 9 barriers for a row of a few elements leave most threads idle on any GPU, and on
/// a CPU implementation (SwiftShader, lavapipe) every barrier switches between the workgroup's
/// threads in software: a sum over an axis of 4 took 20 ms per call on SwiftShader.
const SHORT_ROW: usize = 64;

/// WGSL: `var<workgroup> partial` and `fn tree_<name>(lid, v) -> f32`, which combines the 256
/// threads' values and returns the result to every thread. Called from uniform control flow only.
pub(crate) fn tree_functions() -> String {
    // max/min propagate NaN as on the CPU: the builtins may drop it (WGSL lets compilers assume
    // no NaN), so it is tested on the bits.
    let mut s = String::from(
        "var<workgroup> partial: array<f32, 256>;
// Through a parameter: a constant expression evaluating to inf or NaN fails WGSL shader creation.
fn from_bits(bits: u32) -> f32 { return bitcast<f32>(bits); }
fn nan_in(a: f32, b: f32) -> bool { return (bitcast<u32>(a) & 0x7fffffffu) > 0x7f800000u || (bitcast<u32>(b) & 0x7fffffffu) > 0x7f800000u; }
fn nan_max(a: f32, b: f32) -> f32 { return select(max(a, b), from_bits(0x7fc00000u), nan_in(a, b)); }
fn nan_min(a: f32, b: f32) -> f32 { return select(min(a, b), from_bits(0x7fc00000u), nan_in(a, b)); }
",
    );
    for (name, combine) in [("sum", "a + b"), ("max", "nan_max(a, b)"), ("min", "nan_min(a, b)")] {
        s.push_str(&format!(
            "fn tree_{name}(lid: u32, v: f32) -> f32 {{
  partial[lid] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s = s >> 1u) {{
    if (lid < s) {{ let a = partial[lid]; let b = partial[lid + s]; partial[lid] = {combine}; }}
    workgroupBarrier();
  }}
  let r = partial[0];
  workgroupBarrier();
  return r;
}}
"
        ));
    }
    s
}

/// (tree function, identity, WGSL combine of `acc` and `v`) of each supported reduction.
fn parts(op: ReduceOp) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match op {
        ReduceOp::Sum | ReduceOp::Mean => ("sum", "0.0", "acc + v"),
        ReduceOp::Max => ("max", "-from_bits(0x7f800000u)", "nan_max(acc, v)"),
        ReduceOp::Min => ("min", "from_bits(0x7f800000u)", "nan_min(acc, v)"),
        _ => return None,
    })
}

/// Reduces `x` over `axes` (empty: all). float32 -> float32; shape as kiln-core's reduce.
pub fn reduce(dev: &GpuDevice, op: ReduceOp, x: &GpuTensor, axes: &[isize], keep_dims: bool) -> Result<GpuTensor> {
    let name = op.name();
    x.expect_dtype(name, DType::F32)?;
    if parts(op).is_none() {
        return Err(KilnError::new(name, "has no GPU kernel yet (sum, mean, max and min do)"));
    }
    let pl = plan(name, x, axes, keep_dims)?;
    let (rows, len, out_shape) = (pl.rows, pl.len, &pl.out_shape);
    if len == 0 && rows > 0 {
        return match op {
            // An empty sum is 0 and an empty mean 0/0, as on the CPU.
            ReduceOp::Sum | ReduceOp::Mean => {
                let fill = if op == ReduceOp::Sum { 0.0 } else { f32::NAN };
                // Filled by kiln-core's fallible allocation: `rows` may be far more than memory holds.
                GpuTensor::upload(dev, &kiln_core::ops::creation::full_named(name, out_shape, fill as f64, DType::F32)?)
            }
            _ => Err(KilnError::new(name, format!("cannot reduce an empty dimension of shape {} (no identity)", fmt_shape(x.shape())))),
        };
    }
    let moved = pl.rows(dev, x)?;
    let out = reduce_rows(dev, op, &moved, rows, len)?;
    out.reshape(dev, &out_shape.iter().map(|&d| d as isize).collect::<Vec<_>>())
}

/// How a reduction of x over some axes is laid out: the reduced axes moved last make `rows`
/// contiguous rows of `len` elements; the result has `out_shape`.
pub(crate) struct ReducePlan {
    pub rows: usize,
    pub len: usize,
    pub out_shape: Vec<usize>,
    perm: Vec<usize>,
}

impl ReducePlan {
    /// x with the reduced axes moved last, contiguous (a copy only when needed), as [rows, len].
    pub fn rows(&self, dev: &GpuDevice, x: &GpuTensor) -> Result<GpuTensor> {
        x.permute(&self.perm)?.contiguous(dev)?.reshape(dev, &[self.rows as isize, self.len as isize])
    }
}

/// The plan of reducing `x` over `axes` (empty: all), as kiln-core lays it out.
pub(crate) fn plan(name: &str, x: &GpuTensor, axes: &[isize], keep_dims: bool) -> Result<ReducePlan> {
    let rank = x.rank();
    let reduced = layout::normalize_axes(name, axes, rank)?;
    let kept: Vec<usize> = (0..rank).filter(|d| !reduced.contains(d)).collect();
    let len: usize = reduced.iter().map(|&d| x.shape()[d]).product();
    let rows: usize = kept.iter().map(|&d| x.shape()[d]).product();
    let out_shape: Vec<usize> = if keep_dims {
        (0..rank).map(|d| if reduced.contains(&d) { 1 } else { x.shape()[d] }).collect()
    } else {
        kept.iter().map(|&d| x.shape()[d]).collect()
    };
    let perm: Vec<usize> = kept.iter().chain(&reduced).copied().collect();
    Ok(ReducePlan { rows, len, out_shape, perm })
}

/// Reduces each of `rows` contiguous rows of `len` elements of `x` -> [rows].
fn reduce_rows(dev: &GpuDevice, op: ReduceOp, x: &GpuTensor, rows: usize, len: usize) -> Result<GpuTensor> {
    let name = op.name();
    check_u32_range(name, x.offset() + rows * len)?;
    let out = GpuTensor::empty(dev, name, &[rows], DType::F32)?;
    if rows == 0 {
        return Ok(out);
    }
    let chunks = if rows < FEW_ROWS && len > CHUNK { len.div_ceil(CHUNK) } else { 1 };
    if chunks > 1 {
        // Pass 1: partial results per chunk, [rows, chunks]; pass 2 reduces those rows.
        let partial = GpuTensor::empty(dev, name, &[rows, chunks], DType::F32)?;
        let combine_op = if op == ReduceOp::Mean { ReduceOp::Sum } else { op };
        run(dev, combine_op, x, &partial, rows, len, CHUNK, chunks, 1.0)?;
        let scale = if op == ReduceOp::Mean { 1.0 / len as f32 } else { 1.0 };
        run(dev, combine_op, &partial, &out, rows, chunks, chunks, 1, scale)?;
        return Ok(out);
    }
    let scale = if op == ReduceOp::Mean { 1.0 / len as f32 } else { 1.0 };
    if len <= SHORT_ROW {
        run_short(dev, op, x, &out, rows, len, scale)?;
    } else {
        run(dev, op, x, &out, rows, len, len, 1, scale)?;
    }
    Ok(out)
}

/// One thread per row of `len` (<= SHORT_ROW) elements, folded in order (see SHORT_ROW).
fn run_short(dev: &GpuDevice, op: ReduceOp, x: &GpuTensor, out: &GpuTensor, rows: usize, len: usize, scale: f32) -> Result<()> {
    let (tree, identity, combine) = parts(op).expect("checked by reduce");
    let params = Params::default().u32(rows).u32(len).u32(x.offset()).f32(scale).upload(dev, op.name())?;
    let key = format!("reduce_short:{tree}");
    let source = || {
        format!(
            "@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
{helpers}
// params: [rows, len, offset, scale]; one thread per row.
@compute @workgroup_size(256)
fn main({ENTRY_ARGS_1D}) {{
  let row = {LINEAR_INDEX};
  if (row >= params[0]) {{ return; }}
  let start = params[2] + row * params[1];
  var acc = {identity};
  for (var j = 0u; j < params[1]; j = j + 1u) {{
    let v = x[start + j];
    acc = {combine};
  }}
  out[row] = acc * bitcast<f32>(params[3]);
}}
",
            // For nan_max/nan_min and from_bits; the tree functions go unused.
            helpers = tree_functions()
        )
    };
    dev.dispatch(op.name(), &key, source, &[params.buffer(), x.buffer(), out.buffer()], dev.groups_1d(rows))
}

#[allow(clippy::too_many_arguments)]
fn run(dev: &GpuDevice, op: ReduceOp, x: &GpuTensor, out: &GpuTensor, rows: usize, len: usize, chunk_len: usize, chunks: usize, scale: f32) -> Result<()> {
    let (tree, identity, combine) = parts(op).expect("checked by reduce");
    let params = Params::default().u32(rows).u32(len).u32(x.offset()).u32(chunk_len).u32(chunks).f32(scale).upload(dev, op.name())?;
    let key = format!("reduce:{tree}");
    let source = || {
        format!(
            "@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
{trees}
// params: [rows, len, offset, chunk_len, chunks, scale]; one workgroup per (row, chunk).
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {{
  let item = wid.y * nwg.x + wid.x;
  let chunks = params[4];
  if (item >= params[0] * chunks) {{ return; }}
  let row = item / chunks;
  let c = item % chunks;
  let chunk_len = params[3];
  let start = params[2] + row * params[1] + c * chunk_len;
  let count = min(chunk_len, params[1] - c * chunk_len);
  var acc = {identity};
  for (var j = lid; j < count; j = j + 256u) {{
    let v = x[start + j];
    acc = {combine};
  }}
  let r = tree_{tree}(lid, acc);
  if (lid == 0u) {{ out[item] = r * bitcast<f32>(params[5]); }}
}}
",
            trees = tree_functions()
        )
    };
    dev.dispatch(op.name(), &key, source, &[params.buffer(), x.buffer(), out.buffer()], dev.groups_for(rows * chunks))
}
