//! Ops that move elements without arithmetic: concat, stack, split, gather (indexSelect),
//! scatterAdd, oneHot, pad and cast. They work for every dtype unless noted. Validation, shape
//! rules, one dispatch and the autograd record; the CPU kernels are device/cpu/shape.rs.

use crate::autograd;
use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
use crate::layout;
use crate::tensor::Tensor;

pub use crate::params::shape::{expect_int_indices, index_out_of_range, one_hot_out_of_range};

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
    let (axis, _) = concat_shape(&metas, axis)?;
    let inputs: Vec<&Tensor> = tensors.iter().collect();
    let out = crate::device::dispatch(OP, &inputs)?.concat(tensors, axis)?;
    let sizes: Vec<usize> = tensors.iter().map(|t| t.shape()[axis]).collect();
    Ok(autograd::record("concat", &inputs, &[], out, move |g, _, _| {
        Ok(split(g, Sections::Sizes(sizes), axis as isize)?.into_iter().map(Some).collect())
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
    let x_shape = x.shape().to_vec();
    let record = move |out: Tensor| autograd::record("gather", &[x], &[indices], out, move |g, saved, _needs| {
        // Zeros on g's device, so the scatter runs where the gradient lives.
        let zeros = crate::device::dispatch("gather", &[g])?.full(&x_shape, 0.0, DType::F32)?;
        Ok(vec![Some(scatter_add(&zeros, &saved[0], g, axis as isize)?)])
    });
    let dev = crate::device::dispatch(OP, &[x, indices])?;
    expect_int_indices(OP, indices.shape(), indices.dtype())?;
    // Index values are checked by the device: the CPU at once, the GPU at the next readback.
    Ok(record(dev.gather(x, indices, axis)?))
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
    let record = move |out: Tensor| autograd::record("scatterAdd", &[base, updates], &[indices], out, move |g, saved, _needs| {
        Ok(vec![Some(g.clone()), Some(gather(g, &saved[0], axis as isize)?)])
    });
    Ok(record(crate::device::dispatch(OP, &[base, indices, updates])?.scatter_add(base, indices, updates, axis)?))
}

/// indices [...] (int32, each in [0, depth)) -> [..., depth] float32 with `on` at the index, `off` elsewhere.
pub fn one_hot(indices: &Tensor, depth: usize, on: f32, off: f32) -> Result<Tensor> {
    const OP: &str = "oneHot";
    let dev = crate::device::dispatch(OP, &[indices])?;
    expect_int_indices(OP, indices.shape(), indices.dtype())?;
    dev.one_hot(indices, depth, on, off)
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
    pad_shape(x.shape(), paddings)?;
    let out = crate::device::dispatch(OP, &[x])?.pad(x, paddings, value)?;
    let begin: Vec<isize> = paddings.iter().map(|&(b, _)| b as isize).collect();
    let size: Vec<isize> = x.shape().iter().map(|&d| d as isize).collect();
    Ok(autograd::record("pad", &[x], &[], out, move |g, _, _| Ok(vec![Some(g.slice(&begin, &size)?)])))
}

/// Converts elements to `dtype`: float -> int truncates toward zero, anything -> bool is `!= 0`.
pub fn cast(x: &Tensor, dtype: DType) -> Result<Tensor> {
    if x.dtype() == dtype {
        return Ok(x.clone());
    }
    crate::device::dispatch("cast", &[x])?.cast(x, dtype)
}
