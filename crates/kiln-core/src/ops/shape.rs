//! Ops that move elements without arithmetic: concat, stack, split, gather (indexSelect),
//! scatterAdd, oneHot, pad and cast. They work for every dtype unless noted.

use crate::autograd;
use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
use crate::layout::{self, contiguous_strides, numel};
use crate::parallel::SendPtr;
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
fn copy_into<T: Element>(src: &Tensor, dst: &mut [T], dst_strides: &[usize], dst_offset: usize) {
    let raw = src.raw::<T>().expect("dtype checked by caller");
    let ptr = SendPtr(dst.as_mut_ptr());
    let len = dst.len();
    layout::for_each_row(src.shape(), [src.strides(), dst_strides], [src.offset(), dst_offset], |([s, d], n, [ss, ds])| {
        assert!(n == 0 || d + (n - 1) * ds < len);
        for i in 0..n {
            // SAFETY: bounds asserted above; distinct rows write distinct elements.
            unsafe { *ptr.get().add(d + i * ds) = raw[s + i * ss] };
        }
    });
}

/// concat's checks on the inputs' (shape, dtype) -> (axis, output shape); the GPU kernels share it.
pub fn concat_shape(inputs: &[(&[usize], DType)], axis: isize) -> Result<(usize, Vec<usize>)> {
    const OP: &str = "concat";
    let &(first, first_dtype) = inputs.first().ok_or_else(|| KilnError::new(OP, "needs at least one tensor"))?;
    let rank = first.len();
    if rank == 0 {
        return Err(KilnError::new(OP, "cannot concatenate scalars (use stack)"));
    }
    let axis = layout::normalize_axis(OP, axis, rank)?;
    let mut out_shape = first.to_vec();
    out_shape[axis] = 0;
    for (i, &(shape, dtype)) in inputs.iter().enumerate() {
        let compatible = shape.len() == rank && (0..rank).all(|d| d == axis || shape[d] == first[d]);
        if !compatible || dtype != first_dtype {
            return Err(KilnError::new(OP, format!(
                "tensor {i} ({} {}) does not match tensor 0 ({} {}) outside axis {axis}",
                dtype, fmt_shape(shape), first_dtype, fmt_shape(first)
            )));
        }
        out_shape[axis] += shape[axis];
    }
    Ok((axis, out_shape))
}

/// Joins tensors along an existing axis: shapes equal except along `axis`.
pub fn concat(tensors: &[Tensor], axis: isize) -> Result<Tensor> {
    const OP: &str = "concat";
    let metas: Vec<(&[usize], DType)> = tensors.iter().map(|t| (t.shape(), t.dtype())).collect();
    let (axis, out_shape) = concat_shape(&metas, axis)?;
    let inputs: Vec<&Tensor> = tensors.iter().collect();
    let out = match crate::device::device_of(OP, &inputs)? {
        Some(dev) => dev.concat(tensors, axis)?,
        None => concat_cpu(tensors, axis, &out_shape)?,
    };
    let sizes: Vec<usize> = tensors.iter().map(|t| t.shape()[axis]).collect();
    Ok(autograd::record("concat", &inputs, &[], out, move |g, _, _| {
        Ok(split(g, Sections::Sizes(sizes), axis as isize)?.into_iter().map(Some).collect())
    }))
}

fn concat_cpu(tensors: &[Tensor], axis: usize, out_shape: &[usize]) -> Result<Tensor> {
    const OP: &str = "concat";
    let out_strides = contiguous_strides(out_shape);
    Ok(with_element!(OP, tensors[0].dtype(), T => {
        let mut out: Vec<T> = crate::storage::try_zeroed(OP, layout::checked_numel(OP, out_shape)?)?;
        let mut offset = 0;
        for t in tensors {
            copy_into::<T>(t, &mut out, &out_strides, offset * out_strides[axis]);
            offset += t.shape()[axis];
        }
        Tensor::from_vec(out, out_shape)?
    }))
}

/// stack's checks on the inputs' shapes -> the new axis; the GPU kernels share it.
pub fn stack_axis(shapes: &[&[usize]], axis: isize) -> Result<usize> {
    let first = *shapes.first().ok_or_else(|| KilnError::new("stack", "needs at least one tensor"))?;
    for (i, &shape) in shapes.iter().enumerate() {
        if shape != first {
            return Err(KilnError::new("stack", format!(
                "tensor {i} has shape {} but tensor 0 has {}", fmt_shape(shape), fmt_shape(first)
            )));
        }
    }
    layout::normalize_axis("stack", axis, first.len() + 1)
}

/// Joins tensors of one shape along a new axis: n x [...shape] -> [...shape with n inserted at axis].
pub fn stack(tensors: &[Tensor], axis: isize) -> Result<Tensor> {
    let shapes: Vec<&[usize]> = tensors.iter().map(|t| t.shape()).collect();
    let axis = stack_axis(&shapes, axis)? as isize;
    let expanded: Vec<Tensor> = tensors.iter().map(|t| t.unsqueeze(axis)).collect::<Result<_>>()?;
    concat(&expanded, axis).map_err(|e| KilnError::new("stack", e.message))
}

/// How to split: into `Count` equal parts, or into parts of the given sizes.
pub enum Sections {
    Count(usize),
    Sizes(Vec<usize>),
}

/// split's checks on the input's shape -> (axis, part sizes); the GPU kernels share it.
pub fn split_sizes(shape: &[usize], sections: Sections, axis: isize) -> Result<(usize, Vec<usize>)> {
    const OP: &str = "split";
    if shape.is_empty() {
        return Err(KilnError::new(OP, "cannot split a scalar (reshape it to [1] first)"));
    }
    let axis = layout::normalize_axis(OP, axis, shape.len())?;
    let dim = shape[axis];
    let sizes = match sections {
        Sections::Count(c) => {
            // c > dim could only divide a zero-length dim, into c empty parts: refuse rather than
            // allocate c handles for a count typed by mistake (found by fuzzing: 2^32 parts).
            if c == 0 || c > dim.max(1) || !dim.is_multiple_of(c) {
                return Err(KilnError::new(OP, format!("cannot split dimension {axis} of shape {} into {c} equal parts", fmt_shape(shape))));
            }
            vec![dim / c; c]
        }
        Sections::Sizes(s) => {
            if s.iter().try_fold(0usize, |a, &b| a.checked_add(b)) != Some(dim) {
                return Err(KilnError::new(OP, format!("sizes {s:?} do not add up to dimension {axis} ({dim}) of shape {}", fmt_shape(shape))));
            }
            s
        }
    };
    Ok((axis, sizes))
}

/// Splits along `axis` into views.
pub fn split(x: &Tensor, sections: Sections, axis: isize) -> Result<Vec<Tensor>> {
    let (axis, sizes) = split_sizes(x.shape(), sections, axis)?;
    let mut begin = vec![0isize; x.rank()];
    let mut parts = Vec::with_capacity(sizes.len());
    for s in sizes {
        let mut size: Vec<isize> = x.shape().iter().map(|&d| d as isize).collect();
        size[axis] = s as isize;
        parts.push(x.slice(&begin, &size)?);
        begin[axis] += s as isize;
    }
    Ok(parts)
}

/// (outer, dim, inner) of `shape` around `axis`.
fn around_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (numel(&shape[..axis]), shape[axis], numel(&shape[axis + 1..]))
}

/// Checks that gather's, scatterAdd's or oneHot's indices are int32; the GPU kernels share it.
pub fn expect_int_indices(op: &str, shape: &[usize], dtype: DType) -> Result<()> {
    if dtype != DType::I32 {
        return Err(KilnError::new(op, format!("indices must be int32, got {dtype} {}", fmt_shape(shape))));
    }
    Ok(())
}

fn check_indices(op: &str, indices: &Tensor, dim: usize, x_shape: &[usize], axis: usize) -> Result<Vec<i32>> {
    expect_int_indices(op, indices.shape(), indices.dtype())?;
    let idx = indices.elements::<i32>(op)?;
    if let Some(&bad) = idx.iter().find(|&&i| i < 0 || i as usize >= dim) {
        return Err(KilnError::new(op, index_out_of_range(&bad.to_string(), x_shape, axis)));
    }
    Ok(idx)
}

/// oneHot's message for an index outside [0, depth) (text, as index_out_of_range).
pub fn one_hot_out_of_range(bad: &str, depth: usize) -> String {
    format!("index {bad} is out of range [0, {depth}) for depth [{depth}]")
}

/// The message for a bad gather/scatterAdd index `bad` along `axis` of `shape`. The GPU kernels
/// find bad indices on the device and fill in "{value}" later, so it takes the index as text.
pub fn index_out_of_range(bad: &str, shape: &[usize], axis: usize) -> String {
    format!("index {bad} is out of range [0, {}) for axis {axis} of shape {}", shape[axis], fmt_shape(shape))
}

/// gather's check on x's shape -> the axis (indices: expect_int_indices); the GPU kernels share it.
pub fn gather_axis(x_shape: &[usize], axis: isize) -> Result<usize> {
    const OP: &str = "gather";
    let axis = layout::normalize_axis(OP, axis, x_shape.len())?;
    if x_shape.is_empty() {
        return Err(KilnError::new(OP, "cannot gather from a scalar"));
    }
    Ok(axis)
}

/// gather's output (scatterAdd's updates) shape: [...pre, ...idx, ...post]; the GPU kernels share it.
pub fn gather_shape(x_shape: &[usize], indices_shape: &[usize], axis: usize) -> Vec<usize> {
    let mut out_shape = x_shape[..axis].to_vec();
    out_shape.extend_from_slice(indices_shape);
    out_shape.extend_from_slice(&x_shape[axis + 1..]);
    out_shape
}

/// Selects entries along `axis`: x [...pre, D, ...post], indices [...idx] (int32)
/// -> [...pre, ...idx, ...post]. indexSelect in PyTorch, gather in tfjs.
pub fn gather(x: &Tensor, indices: &Tensor, axis: isize) -> Result<Tensor> {
    const OP: &str = "gather";
    let axis = gather_axis(x.shape(), axis)?;
    let (outer, dim, inner) = around_axis(x.shape(), axis);
    let x_shape = x.shape().to_vec();
    let record = move |out: Tensor| autograd::record("gather", &[x], &[indices], out, move |g, saved, _needs| {
        // Zeros on g's device, so the scatter runs where the gradient lives.
        let zeros = match crate::device::device_of("gather", &[g])? {
            Some(dev) => dev.full(&x_shape, 0.0, DType::F32)?,
            None => crate::ops::zeros(&x_shape, DType::F32)?,
        };
        Ok(vec![Some(scatter_add(&zeros, &saved[0], g, axis as isize)?)])
    });
    if let Some(dev) = crate::device::device_of(OP, &[x, indices])? {
        expect_int_indices(OP, indices.shape(), indices.dtype())?;
        return Ok(record(dev.gather(x, indices, axis)?));
    }
    let idx = check_indices(OP, indices, dim, x.shape(), axis)?;
    let out_shape = gather_shape(x.shape(), indices.shape(), axis);
    let xc = x.materialize()?;
    let out = with_element!(OP, x.dtype(), T => {
        let src = xc.contiguous_slice::<T>().unwrap();
        let mut out: Vec<T> = crate::storage::try_zeroed(OP, layout::checked_numel(OP, &out_shape)?)?;
        for (dst, (o, &i)) in out.chunks_mut(inner.max(1)).zip((0..outer).flat_map(|o| idx.iter().map(move |i| (o, i)))) {
            let start = (o * dim + i as usize) * inner;
            dst.copy_from_slice(&src[start..start + inner]);
        }
        Tensor::from_vec(out, &out_shape)?
    });
    Ok(record(out))
}

/// scatterAdd's checks on (shape, dtype) of base, indices, updates -> axis; the GPU kernels share it.
pub fn scatter_add_axis(base: (&[usize], DType), indices: (&[usize], DType), updates: (&[usize], DType), axis: isize) -> Result<usize> {
    const OP: &str = "scatterAdd";
    let ((base_shape, base_dtype), (updates_shape, updates_dtype)) = (base, updates);
    if base_dtype != DType::F32 || updates_dtype != DType::F32 {
        return Err(KilnError::new(OP, format!(
            "base and updates must be float32, got {} {} and {} {}",
            base_dtype, fmt_shape(base_shape), updates_dtype, fmt_shape(updates_shape)
        )));
    }
    if base_shape.is_empty() {
        return Err(KilnError::new(OP, "cannot scatter into a scalar base (reshape it to [1] first)"));
    }
    let axis = layout::normalize_axis(OP, axis, base_shape.len())?;
    expect_int_indices(OP, indices.0, indices.1)?;
    let want = gather_shape(base_shape, indices.0, axis);
    if updates_shape != want.as_slice() {
        return Err(KilnError::new(OP, format!(
            "updates have shape {} but base {} with indices {} along axis {axis} needs {}",
            fmt_shape(updates_shape), fmt_shape(base_shape), fmt_shape(indices.0), fmt_shape(&want)
        )));
    }
    Ok(axis)
}

/// The adjoint of gather: base [...pre, D, ...post] plus updates [...pre, ...idx, ...post] summed
/// into the rows named by indices [...idx] along `axis` -> base's shape. Repeated indices add up.
pub fn scatter_add(base: &Tensor, indices: &Tensor, updates: &Tensor, axis: isize) -> Result<Tensor> {
    const OP: &str = "scatterAdd";
    let axis = scatter_add_axis((base.shape(), base.dtype()), (indices.shape(), indices.dtype()), (updates.shape(), updates.dtype()), axis)?;
    let (outer, dim, inner) = around_axis(base.shape(), axis);
    let record = move |out: Tensor| autograd::record("scatterAdd", &[base, updates], &[indices], out, move |g, saved, _needs| {
        Ok(vec![Some(g.clone()), Some(gather(g, &saved[0], axis as isize)?)])
    });
    if let Some(dev) = crate::device::device_of(OP, &[base, indices, updates])? {
        return Ok(record(dev.scatter_add(base, indices, updates, axis)?));
    }
    let idx = check_indices(OP, indices, dim, base.shape(), axis)?;
    let mut out = base.elements::<f32>(OP)?;
    let upd = updates.materialize()?;
    let upd = upd.contiguous_slice::<f32>().unwrap();
    for o in 0..outer {
        for (j, &i) in idx.iter().enumerate() {
            let dst = (o * dim + i as usize) * inner;
            let src = (o * idx.len() + j) * inner;
            for (d, s) in out[dst..dst + inner].iter_mut().zip(&upd[src..src + inner]) {
                *d += s;
            }
        }
    }
    Ok(record(Tensor::from_vec(out, base.shape())?))
}

/// indices [...] (int32, each in [0, depth)) -> [..., depth] float32 with `on` at the index, `off` elsewhere.
pub fn one_hot(indices: &Tensor, depth: usize, on: f32, off: f32) -> Result<Tensor> {
    const OP: &str = "oneHot";
    if let Some(dev) = crate::device::device_of(OP, &[indices])? {
        expect_int_indices(OP, indices.shape(), indices.dtype())?;
        return dev.one_hot(indices, depth, on, off);
    }
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

/// pad's check on the input's shape -> the padded shape; the GPU kernels share it.
pub fn pad_shape(shape: &[usize], paddings: &[(usize, usize)]) -> Result<Vec<usize>> {
    if paddings.len() != shape.len() {
        return Err(KilnError::new("pad", format!(
            "needs one (before, after) pair per dimension of shape {}, got {}", fmt_shape(shape), paddings.len()
        )));
    }
    Ok(shape.iter().zip(paddings).map(|(d, (b, a))| d + b + a).collect())
}

/// Pads each dimension with `paddings[d] = (before, after)` elements of `value`.
pub fn pad(x: &Tensor, paddings: &[(usize, usize)], value: f64) -> Result<Tensor> {
    const OP: &str = "pad";
    let out_shape = pad_shape(x.shape(), paddings)?;
    let out = match crate::device::device_of(OP, &[x])? {
        Some(dev) => dev.pad(x, paddings, value)?,
        None => pad_cpu(x, paddings, value, &out_shape)?,
    };
    let begin: Vec<isize> = paddings.iter().map(|&(b, _)| b as isize).collect();
    let size: Vec<isize> = x.shape().iter().map(|&d| d as isize).collect();
    Ok(autograd::record("pad", &[x], &[], out, move |g, _, _| Ok(vec![Some(g.slice(&begin, &size)?)])))
}

fn pad_cpu(x: &Tensor, paddings: &[(usize, usize)], value: f64, out_shape: &[usize]) -> Result<Tensor> {
    const OP: &str = "pad";
    let out_strides = contiguous_strides(out_shape);
    let offset: usize = paddings.iter().zip(&out_strides).map(|((b, _), s)| b * s).sum();
    let fill = crate::ops::creation::full(out_shape, value, x.dtype()).map_err(|e| KilnError::new(OP, e.message))?;
    Ok(with_element!(OP, x.dtype(), T => {
        let mut out = fill.elements::<T>(OP)?;
        copy_into::<T>(x, &mut out, &out_strides, offset);
        Tensor::from_vec(out, out_shape)?
    }))
}

/// Converts elements to `dtype`: float -> int truncates toward zero, anything -> bool is `!= 0`.
pub fn cast(x: &Tensor, dtype: DType) -> Result<Tensor> {
    if x.dtype() == dtype {
        return Ok(x.clone());
    }
    if let Some(dev) = crate::device::device_of("cast", &[x])? {
        return dev.cast(x, dtype);
    }
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
