//! gather (indexSelect), scatterAdd and oneHot: kiln-core's ops/shape.rs semantics on the device.
//! gather's gradient is scatterAdd into zeros and scatterAdd's gradient (for updates) is gather
//! (kiln-core's autograd composes them), so these two kernels are the whole family.
//!
//! Indices are checked on the device (checks.rs): a bad index is clamped and reported at the next
//! readback, with kiln-core's message. scatterAdd adds with a compare-exchange loop on the output
//! bits, so repeated indices add up in an unspecified order (float rounding may differ from the
//! CPU's sequential order by an ulp per add).

use super::launch::{atomic_add_f32, run_1d, Kernel};
use super::Params;
use crate::device::GpuDevice;
use crate::tensor::GpuTensor;
use kiln_core::layout::numel;
use kiln_core::ops::shape::{expect_int_indices, gather_axis, gather_shape, index_out_of_range, one_hot_out_of_range, scatter_add_axis};
use kiln_core::{DType, Result};

/// (outer, dim, inner) of `shape` around `axis`.
fn around_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (numel(&shape[..axis]), shape[axis], numel(&shape[axis + 1..]))
}

/// kiln-core's out-of-range message, its "{value}" filled in from what the kernel reports.
fn range_message(shape: &[usize], axis: usize) -> String {
    index_out_of_range("{value}", shape, axis)
}

/// x [...pre, D, ...post] (any dtype), indices [...idx] int32 -> [...pre, ...idx, ...post].
pub fn gather(dev: &GpuDevice, x: &GpuTensor, indices: &GpuTensor, axis: isize) -> Result<GpuTensor> {
    const OP: &str = "gather";
    let axis = gather_axis(x.shape(), axis)?;
    expect_int_indices(OP, indices.shape(), indices.dtype())?;
    let (_, dim, inner) = around_axis(x.shape(), axis);
    let out_shape = gather_shape(x.shape(), indices.shape(), axis);
    let out = GpuTensor::empty(dev, OP, &out_shape, x.dtype())?;
    let n = out.numel();
    if n == 0 {
        return Ok(out);
    }
    let (xc, ic) = (x.contiguous(dev)?, indices.contiguous(dev)?);
    super::check_u32_range(OP, xc.end_index().max(ic.end_index()))?;
    let params = Params::default().u32(n).u32(inner).u32(ic.numel()).u32(dim).u32(xc.offset()).u32(ic.offset());
    let decls = "@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;";
    // params: [n, inner, index count, dim, x offset, index offset]
    let body = "  let k = i % p(1u); let t = i / p(1u); let j = t % p(2u); let o = t / p(2u);
  let r = checked(idx[p(5u) + j], p(3u), j);
  out[i] = x[p(4u) + (o * p(3u) + r) * p(1u) + k];";
    let kernel = Kernel { op: OP, key: "gather", decls, body, check: Some(range_message(x.shape(), axis)) };
    run_1d(dev, kernel, n, params, &[xc.buffer(), ic.buffer(), out.buffer()])?;
    Ok(out)
}

/// base [...pre, D, ...post] plus updates [...pre, ...idx, ...post] added into the rows named by
/// indices [...idx] along `axis` -> a new tensor of base's shape. float32.
pub fn scatter_add(dev: &GpuDevice, base: &GpuTensor, indices: &GpuTensor, updates: &GpuTensor, axis: isize) -> Result<GpuTensor> {
    const OP: &str = "scatterAdd";
    let axis = scatter_add_axis((base.shape(), base.dtype()), (indices.shape(), indices.dtype()), (updates.shape(), updates.dtype()), axis)?;
    let (_, dim, inner) = around_axis(base.shape(), axis);
    // A fresh copy of base receives the adds (copy always allocates).
    let out = super::elementwise::copy(dev, base)?;
    add_rows(dev, OP, &out, indices, updates, axis, dim, inner)?;
    Ok(out)
}

/// out[o, idx[j], k] += updates[o, j, k] with a float compare-exchange add, out contiguous.
#[allow(clippy::too_many_arguments)]
fn add_rows(dev: &GpuDevice, op: &str, out: &GpuTensor, indices: &GpuTensor, updates: &GpuTensor, axis: usize, dim: usize, inner: usize) -> Result<()> {
    let n = updates.numel();
    if n == 0 {
        return Ok(());
    }
    let (uc, ic) = (updates.contiguous(dev)?, indices.contiguous(dev)?);
    super::check_u32_range(op, out.numel().max(uc.end_index()).max(ic.end_index()))?;
    let params = Params::default().u32(n).u32(inner).u32(ic.numel()).u32(dim).u32(uc.offset()).u32(ic.offset());
    let decls = format!(
        "@group(0) @binding(1) var<storage, read> upd: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<atomic<u32>>;
{}",
        atomic_add_f32("out")
    );
    // params: [n, inner, index count, dim, updates offset, index offset]
    let body = "  let k = i % p(1u); let t = i / p(1u); let j = t % p(2u); let o = t / p(2u);
  let r = checked(idx[p(5u) + j], p(3u), j);
  add_out((o * p(3u) + r) * p(1u) + k, upd[p(4u) + i]);";
    let kernel = Kernel { op, key: "scatter_add", decls: &decls, body, check: Some(range_message(out.shape(), axis)) };
    run_1d(dev, kernel, n, params, &[uc.buffer(), ic.buffer(), out.buffer()])
}

/// indices [...] int32 in [0, depth) -> [..., depth] float32: `on` at the index, `off` elsewhere.
pub fn one_hot(dev: &GpuDevice, indices: &GpuTensor, depth: usize, on: f32, off: f32) -> Result<GpuTensor> {
    const OP: &str = "oneHot";
    expect_int_indices(OP, indices.shape(), indices.dtype())?;
    let mut shape = indices.shape().to_vec();
    shape.push(depth);
    let out = GpuTensor::empty(dev, OP, &shape, DType::F32)?;
    let n = out.numel();
    if n == 0 {
        return Ok(out);
    }
    let ic = indices.contiguous(dev)?;
    super::check_u32_range(OP, n.max(ic.end_index()))?;
    let params = Params::default().u32(n).u32(depth).u32(ic.offset()).f32(on).f32(off);
    let decls = "@group(0) @binding(1) var<storage, read> idx: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;";
    // params: [n, depth, index offset, on, off]
    let body = "  let row = i / p(1u);
  let hot = checked(idx[p(2u) + row], p(1u), row);
  out[i] = select(pf(4u), pf(3u), i % p(1u) == hot);";
    let check = Some(one_hot_out_of_range("{value}", depth));
    run_1d(dev, Kernel { op: OP, key: "one_hot", decls, body, check }, n, params, &[ic.buffer(), out.buffer()])?;
    Ok(out)
}
