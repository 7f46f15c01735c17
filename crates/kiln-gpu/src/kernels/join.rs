//! concat and pad on the device (kiln-core's ops/shape.rs semantics, any dtype): each is a
//! strided copy into an output at an offset. stack, split and the backward passes (splits and
//! slices) are views and concats that kiln-core composes from these.

use super::creation::full_named;
use super::launch::{run_1d, Kernel};
use super::Params;
use crate::device::GpuDevice;
use crate::tensor::GpuTensor;
use kiln_core::layout::{self, contiguous_strides};
use kiln_core::ops::shape::{concat_shape, pad_shape};
use kiln_core::{DType, KilnError, Result};

/// Dimensions the copy kernel walks after merging (layout::coalesce).
const MAX_RANK: usize = 8;

/// Copies `src` (any layout) into `dst`'s buffer seen through `dst_strides` (over src's shape)
/// starting at element `dst_offset`: kiln-core's copy_into.
fn copy_into(dev: &GpuDevice, op: &str, src: &GpuTensor, dst: &GpuTensor, dst_strides: &[usize], dst_offset: usize) -> Result<()> {
    let n = src.numel();
    if n == 0 {
        return Ok(());
    }
    super::check_u32_range(op, src.end_index().max(dst.end_index()))?;
    let (dims, [ss, ds]) = layout::coalesce(src.shape(), [src.strides(), dst_strides]);
    if dims.len() > MAX_RANK {
        return Err(KilnError::new(op, format!("a strided input of rank {} (after merging) exceeds the GPU kernel's {MAX_RANK}", dims.len())));
    }
    let pad = |v: &[usize]| (0..MAX_RANK).map(|d| v.get(d).copied().unwrap_or(1)).collect::<Vec<_>>();
    let params = Params::default().u32(n).u32(dims.len()).u32(src.offset()).u32(dst_offset).words(pad(&dims)).words(pad(&ss)).words(pad(&ds));
    let decls = "@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;";
    // params: [n, rank, src offset, dst offset, dims[8], src strides[8], dst strides[8]];
    // the index is peeled innermost dimension first.
    let body = "  var rem = i; var s = p(2u); var d = p(3u);
  for (var k = p(1u); k > 0u; k = k - 1u) {
    let size = p(3u + k); let ix = rem % size; rem = rem / size;
    s = s + ix * p(11u + k); d = d + ix * p(19u + k);
  }
  out[d] = x[s];";
    run_1d(dev, Kernel { op, key: "copy_into", decls, body, check: None }, n, params, &[src.buffer(), dst.buffer()])
}

/// Joins tensors along an existing axis: shapes equal except along `axis`, one dtype.
pub fn concat(dev: &GpuDevice, tensors: &[GpuTensor], axis: isize) -> Result<GpuTensor> {
    const OP: &str = "concat";
    let metas: Vec<(&[usize], DType)> = tensors.iter().map(|t| (t.shape(), t.dtype())).collect();
    let (axis, out_shape) = concat_shape(&metas, axis)?;
    let out = GpuTensor::empty(dev, OP, &out_shape, tensors[0].dtype())?;
    let strides = contiguous_strides(&out_shape);
    let mut offset = 0;
    for t in tensors {
        copy_into(dev, OP, t, &out, &strides, offset * strides[axis])?;
        offset += t.shape()[axis];
    }
    Ok(out)
}

/// Pads dimension d with paddings[d] = (before, after) elements of `value` (converted to x's dtype).
pub fn pad(dev: &GpuDevice, x: &GpuTensor, paddings: &[(usize, usize)], value: f64) -> Result<GpuTensor> {
    const OP: &str = "pad";
    let out_shape = pad_shape(x.shape(), paddings)?;
    let strides = contiguous_strides(&out_shape);
    let offset: usize = paddings.iter().zip(&strides).map(|((b, _), s)| b * s).sum();
    let out = full_named(dev, OP, &out_shape, value, x.dtype())?;
    copy_into(dev, OP, x, &out, &strides, offset)?;
    Ok(out)
}

