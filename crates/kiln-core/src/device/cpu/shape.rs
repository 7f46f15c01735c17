//! The CPU's indexing and copying kernels: concat, gather, scatterAdd, oneHot, pad and cast, for
//! every dtype unless noted. Shapes and dtypes are checked by ops/shape.rs; index values are
//! checked here, before anything is written (an error naming the op, at the call).

use crate::dtype::DType;
use crate::error::{KilnError, Result};
use crate::layout::{self, contiguous_strides, numel};
use crate::parallel::SendPtr;
use crate::params::shape::{expect_int_indices, index_out_of_range, one_hot_out_of_range};
use crate::storage::{Buffer, Element};
use crate::tensor::Tensor;

/// Runs a generic body with `T` bound to the element type of `dtype`.
macro_rules! with_element {
    ($op:expr, $dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            DType::F32 => { type $T = f32; $body }
            DType::I32 => { type $T = i32; $body }
            DType::Bool => { type $T = u8; $body }
            DType::I8 => { type $T = i8; $body }
            other => return Err(KilnError::new($op, format!("dtype {other} is not supported yet"))),
        }
    };
}

/// Copies `src` (any layout) into `dst` seen through `dst_strides` starting at `dst_offset`.
fn copy_into<T: Element>(op: &str, src: &Tensor, dst: &mut [T], dst_strides: &[usize], dst_offset: usize) -> Result<()> {
    let raw = src.cpu_raw::<T>(op)?;
    let ptr = SendPtr(dst.as_mut_ptr());
    let len = dst.len();
    layout::for_each_row(src.shape(), [src.strides(), dst_strides], [src.offset(), dst_offset], |([s, d], n, [ss, ds])| {
        assert!(n == 0 || d + (n - 1) * ds < len);
        if ss == 1 && ds == 1 {
            // Contiguous runs (a channel concat's planes): one memcpy; the strided loop below ran
            // SqueezeNet's 8 Concats at 1.4 ms of CPU per batch-1 inference.
            // SAFETY: bounds asserted above; distinct rows write distinct elements.
            unsafe { std::ptr::copy_nonoverlapping(raw[s..s + n].as_ptr(), ptr.get().add(d), n) };
            return;
        }
        for i in 0..n {
            // SAFETY: bounds asserted above; distinct rows write distinct elements.
            unsafe { *ptr.get().add(d + i * ds) = raw[s + i * ss] };
        }
    });
    Ok(())
}


/// concat along a normalized axis (shapes and dtypes checked by ops::concat).
pub(crate) fn concat(tensors: &[Tensor], axis: usize) -> Result<Tensor> {
    const OP: &str = "concat";
    let mut out_shape = tensors[0].shape().to_vec();
    out_shape[axis] = tensors.iter().map(|t| t.shape()[axis]).sum();
    let out_shape = &out_shape[..];
    let out_strides = contiguous_strides(out_shape);
    let n = layout::checked_numel(OP, out_shape)?;
    Ok(with_element!(OP, tensors[0].dtype(), T => {
        // Not zeroed: the pieces tile the output along `axis`, so the copies write every element,
        // and zeroing was a third pass over it (SqueezeNet batch 8's fire modules: 12 MB each).
        // SAFETY: copy_into only writes through the slice; the Element types have no invalid
        // bit patterns, and the copies cover all n elements before the Vec is read.
        let out: Vec<T> = unsafe {
            crate::alloc::try_written(OP, n, |ptr| {
                let out = std::slice::from_raw_parts_mut(ptr, n);
                let mut offset = 0;
                for t in tensors {
                    copy_into::<T>(OP, t, out, &out_strides, offset * out_strides[axis])?;
                    offset += t.shape()[axis];
                }
                Ok(())
            })?
        };
        Tensor::from_vec(out, out_shape)?
    }))
}

/// (outer, dim, inner) of `shape` around `axis`.
fn around_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (numel(&shape[..axis]), shape[axis], numel(&shape[axis + 1..]))
}

fn check_indices(op: &str, indices: &Tensor, dim: usize, x_shape: &[usize], axis: usize) -> Result<Vec<i32>> {
    expect_int_indices(op, indices.shape(), indices.dtype())?;
    let idx = indices.elements::<i32>(op)?;
    if let Some(&bad) = idx.iter().find(|&&i| i < 0 || i as usize >= dim) {
        return Err(KilnError::new(op, index_out_of_range(&bad.to_string(), x_shape, axis)));
    }
    Ok(idx)
}

/// gather along a normalized axis (see ops::gather).
pub(crate) fn gather(x: &Tensor, indices: &Tensor, axis: usize) -> Result<Tensor> {
    const OP: &str = "gather";
    let (outer, dim, inner) = around_axis(x.shape(), axis);
    let idx = check_indices(OP, indices, dim, x.shape(), axis)?;
    let mut out_shape = x.shape()[..axis].to_vec();
    out_shape.extend_from_slice(indices.shape());
    out_shape.extend_from_slice(&x.shape()[axis + 1..]);
    let xc = x.materialize()?;
    let out = with_element!(OP, x.dtype(), T => {
        let src = xc.cpu_slice::<T>(OP)?;
        let mut out: Vec<T> = crate::storage::try_zeroed(OP, layout::checked_numel(OP, &out_shape)?)?;
        for (dst, (o, &i)) in out.chunks_mut(inner.max(1)).zip((0..outer).flat_map(|o| idx.iter().map(move |i| (o, i)))) {
            let start = (o * dim + i as usize) * inner;
            dst.copy_from_slice(&src[start..start + inner]);
        }
        Tensor::from_vec(out, &out_shape)?
    });
    Ok(out)
}

/// base + updates summed at indices along a normalized axis (see ops::scatter_add).
pub(crate) fn scatter_add(base: &Tensor, indices: &Tensor, updates: &Tensor, axis: usize) -> Result<Tensor> {
    const OP: &str = "scatterAdd";
    let (outer, dim, inner) = around_axis(base.shape(), axis);
    let idx = check_indices(OP, indices, dim, base.shape(), axis)?;
    let mut out = base.elements::<f32>(OP)?;
    let upd = updates.materialize()?;
    let upd = upd.cpu_slice::<f32>(OP)?;
    for o in 0..outer {
        for (j, &i) in idx.iter().enumerate() {
            let dst = (o * dim + i as usize) * inner;
            let src = (o * idx.len() + j) * inner;
            for (d, s) in out[dst..dst + inner].iter_mut().zip(&upd[src..src + inner]) {
                *d += s;
            }
        }
    }
    Tensor::from_vec(out, base.shape())
}

/// indices (int32, each in [0, depth)) -> [..., depth] float32 (see ops::one_hot).
pub(crate) fn one_hot(indices: &Tensor, depth: usize, on: f32, off: f32) -> Result<Tensor> {
    const OP: &str = "oneHot";
    expect_int_indices(OP, indices.shape(), indices.dtype())?;
    let idx = indices.elements::<i32>(OP)?;
    if let Some(&bad) = idx.iter().find(|&&i| i < 0 || i as usize >= depth) {
        return Err(KilnError::new(OP, one_hot_out_of_range(&bad.to_string(), depth)));
    }
    let total = idx.len().checked_mul(depth).ok_or_else(|| KilnError::new(OP, format!("depth {depth} is too large")))?;
    let mut out = crate::storage::try_filled(OP, total, off)?;
    for (row, &i) in idx.iter().enumerate() {
        out[row * depth + i as usize] = on;
    }
    let mut shape = indices.shape().to_vec();
    shape.push(depth);
    Tensor::from_vec(out, &shape)
}

/// x with `paddings[d] = (before, after)` elements of `value` around each dimension d.
pub(crate) fn pad(x: &Tensor, paddings: &[(usize, usize)], value: f64) -> Result<Tensor> {
    const OP: &str = "pad";
    let out_shape: Vec<usize> = x.shape().iter().zip(paddings).map(|(d, (b, a))| d + b + a).collect();
    let out_shape = &out_shape[..];
    let out_strides = contiguous_strides(out_shape);
    let offset: usize = paddings.iter().zip(&out_strides).map(|((b, _), s)| b * s).sum();
    let fill = super::creation::full("full", out_shape, value, x.dtype()).map_err(|e| KilnError::new(OP, e.message))?;
    Ok(with_element!(OP, x.dtype(), T => {
        let mut out = fill.elements::<T>(OP)?;
        copy_into::<T>(OP, x, &mut out, &out_strides, offset)?;
        Tensor::from_vec(out, out_shape)?
    }))
}

/// Converts elements to `dtype` (a different one; see ops::cast).
pub(crate) fn cast(x: &Tensor, dtype: DType) -> Result<Tensor> {
    const OP: &str = "cast";
    use crate::alloc::try_map;
    let buffer = match (x.to_row_major_buffer(OP)?, dtype) {
        (Buffer::F32(v), DType::I32) => Buffer::I32(try_map(OP, &v, |a| a as i32)?),
        (Buffer::F32(v), DType::Bool) => Buffer::Bool(try_map(OP, &v, |a| (a != 0.0) as u8)?),
        (Buffer::I32(v), DType::F32) => Buffer::F32(try_map(OP, &v, |a| a as f32)?),
        (Buffer::I32(v), DType::Bool) => Buffer::Bool(try_map(OP, &v, |a| (a != 0) as u8)?),
        (Buffer::Bool(v), DType::F32) => Buffer::F32(try_map(OP, &v, |a| a as f32)?),
        (Buffer::Bool(v), DType::I32) => Buffer::I32(try_map(OP, &v, |a| a as i32)?),
        (Buffer::I8(v), DType::F32) => Buffer::F32(try_map(OP, &v, |a| a as f32)?),
        (Buffer::I8(v), DType::I32) => Buffer::I32(try_map(OP, &v, |a| a as i32)?),
        (_, other) => return Err(KilnError::new("cast", format!("cannot cast {} to {other} yet", x.dtype()))),
    };
    Ok(Tensor::from_buffer(buffer, x.shape()))
}

impl Tensor {
    /// The elements in row-major order as a fresh Buffer of the same dtype.
    fn to_row_major_buffer(&self, op: &str) -> Result<Buffer> {
        Ok(match self.dtype() {
            DType::F32 => Buffer::F32(self.elements(op)?),
            DType::I32 => Buffer::I32(self.elements(op)?),
            DType::I8 => Buffer::I8(self.elements(op)?),
            _ => Buffer::Bool(self.elements(op)?),
        })
    }
}
