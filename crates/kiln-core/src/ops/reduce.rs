//! Reductions over any set of axes, with keepDims: validation, the autograd record and one
//! dispatch (the CPU's kernels are in device/cpu/reduce.rs).

use crate::autograd;
use crate::device;
use crate::dtype::DType;
use crate::ops::{self, BinaryOp};
use crate::error::{fmt_shape, KilnError, Result};
use crate::layout;
use crate::tensor::Tensor;

pub use crate::params::reduce::ReduceOp;

/// Reduces `x` over `axes` (empty: all axes). Sum/mean/max/min/variance/logSumExp give float32;
/// argmax/argmin give int32 and take at most one axis (none: index into the flattened tensor).
/// `correction` is the variance's delta degrees of freedom (0: population, 1: sample).
pub fn reduce(op: ReduceOp, x: &Tensor, axes: &[isize], keep_dims: bool, correction: usize) -> Result<Tensor> {
    let name = op.name();
    x.expect_dtype(name, DType::F32)?;
    if op.is_arg() && axes.len() > 1 {
        return Err(KilnError::new(name, format!("takes one axis, got {axes:?} for shape {}", fmt_shape(x.shape()))));
    }
    let rank = x.rank();
    let reduced = layout::normalize_axes(name, axes, rank)?;
    let kept: Vec<usize> = (0..rank).filter(|d| !reduced.contains(d)).collect();
    let row_len: usize = reduced.iter().map(|&d| x.shape()[d]).product();
    let rows: usize = kept.iter().map(|&d| x.shape()[d]).product();
    // torch.var clamps n - correction at 0 and returns Inf/NaN with a warning; a correction above
    // the count is a mistake (a negative divisor), so it is an error here. correction == n stays
    // allowed (n = 1 with the sample variance gives NaN, as in PyTorch).
    if op == ReduceOp::Variance && correction > row_len && rows > 0 {
        return Err(KilnError::new(name, format!(
            "correction {correction} is larger than the {row_len} elements reduced per result (shape {}, axes {axes:?}); the divisor n - correction would be negative",
            fmt_shape(x.shape())
        )));
    }
    if row_len == 0 && matches!(op, ReduceOp::Max | ReduceOp::Min | ReduceOp::ArgMax | ReduceOp::ArgMin) && rows > 0 {
        return Err(KilnError::new(name, format!("cannot reduce an empty dimension of shape {} (no identity)", fmt_shape(x.shape()))));
    }
    let y = device::dispatch(name, &[x])?.reduce(op, x, &reduced, keep_dims, correction)?;
    Ok(if op.is_arg() { y } else { record_reduce(op, x, y, &reduced, row_len, correction) })
}

/// Records the gradient of a (non-arg) reduction of x to y over the `reduced` axes.
fn record_reduce(op: ReduceOp, x: &Tensor, y: Tensor, reduced: &[usize], row_len: usize, correction: usize) -> Tensor {
    if !x.requires_grad() {
        return y;
    }
    let (name, rank) = (op.name(), x.rank());
    // The gradient in the shape with reduced dims kept as 1, so it broadcasts against x.
    let kept_shape: Vec<isize> = (0..rank).map(|d| if reduced.contains(&d) { 1 } else { x.shape()[d] as isize }).collect();
    let x_shape = x.shape().to_vec();
    let reduced_axes: Vec<isize> = reduced.iter().map(|&d| d as isize).collect();
    let y_saved = y.clone();
    autograd::record(name, &[x], &[x, &y_saved], y, move |g, saved, _needs| {
        let (x, y) = (&saved[0], &saved[1]);
        let g = g.reshape(&kept_shape)?;
        let y = y.reshape(&kept_shape)?;
        let n = row_len as f32;
        let gx = match op {
            ReduceOp::Sum => g.expand(&x_shape)?,
            ReduceOp::Mean => ops::binary(BinaryOp::Div, &g, &Tensor::scalar_f32(n))?.expand(&x_shape)?,
            ReduceOp::Max | ReduceOp::Min => {
                // Ties share the gradient evenly.
                let hits = ops::cast(&ops::binary(BinaryOp::Equal, x, &y)?, DType::F32)?;
                let count = reduce(ReduceOp::Sum, &hits, &reduced_axes, true, 0)?;
                ops::binary(BinaryOp::Mul, &hits, &ops::binary(BinaryOp::Div, &g, &count)?)?
            }
            ReduceOp::Variance => {
                let mean = reduce(ReduceOp::Mean, x, &reduced_axes, true, 0)?;
                let centered = ops::binary(BinaryOp::Sub, x, &mean)?;
                let scale = Tensor::scalar_f32(2.0 / (n - correction as f32));
                ops::binary(BinaryOp::Mul, &centered, &ops::binary(BinaryOp::Mul, &g, &scale)?)?
            }
            ReduceOp::LogSumExp => {
                let p = ops::unary(ops::UnaryOp::Exp, &ops::binary(BinaryOp::Sub, x, &y)?, 0.0)?;
                ops::binary(BinaryOp::Mul, &p, &g)?
            }
            ReduceOp::ArgMax | ReduceOp::ArgMin => unreachable!("arg reductions record no gradient"),
        };
        Ok(vec![Some(gx)])
    })
}
