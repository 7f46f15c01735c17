//! softmax and logSoftmax along any axis: validation, the autograd record and one dispatch (the
//! CPU's kernel is in device/cpu/softmax.rs).

use crate::autograd;
use crate::device;
use crate::dtype::DType;
use crate::ops::{self, BinaryOp, ReduceOp, UnaryOp};
use crate::error::Result;
use crate::layout;
use crate::tensor::Tensor;

/// softmax (or logSoftmax when `log`) along `axis`: any shape -> the same shape, float32.
pub fn softmax(x: &Tensor, axis: isize, log: bool) -> Result<Tensor> {
    let name = if log { "logSoftmax" } else { "softmax" };
    x.expect_dtype(name, DType::F32)?;
    let rank = x.rank();
    let axis = layout::normalize_axis(name, axis, rank)?;
    if rank == 0 {
        // A scalar is a one-element row along its only "axis".
        return softmax(&x.reshape(&[1])?, 0, log)?.reshape(&[]);
    }
    let y = device::dispatch(name, &[x])?.softmax(x, axis, log)?;
    let y_saved = y.clone();
    let axis = axis as isize;
    Ok(autograd::record(name, &[x], &[&y_saved], y, move |g, saved, _needs| {
        let y = &saved[0];
        let gx = if log {
            // d logSoftmax: g - softmax(x) * sum(g)
            let total = ops::reduce(ReduceOp::Sum, g, &[axis], true, 0)?;
            let p = ops::unary(UnaryOp::Exp, y, 0.0)?;
            ops::binary(BinaryOp::Sub, g, &ops::binary(BinaryOp::Mul, &p, &total)?)?
        } else {
            // d softmax: y * (g - sum(g * y))
            let gy = ops::binary(BinaryOp::Mul, g, y)?;
            let total = ops::reduce(ReduceOp::Sum, &gy, &[axis], true, 0)?;
            ops::binary(BinaryOp::Mul, y, &ops::binary(BinaryOp::Sub, g, &total)?)?
        };
        Ok(vec![Some(gx)])
    }))
}
