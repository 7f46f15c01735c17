//! Elementwise unary ops: validation, one dispatch to the input's device and the autograd record.
//! The table of formulas is params/unary.rs; the CPU's SIMD loops are device/cpu/unary.rs.

use crate::autograd;
use crate::device;
use crate::error::Result;
use crate::tensor::Tensor;
use crate::dtype::DType;

pub use crate::params::unary::{UnaryKernel, UnaryOp, UnaryVisitor};

/// Applies `op` elementwise: any shape -> the same shape, float32 only.
pub fn unary(op: UnaryOp, x: &Tensor, alpha: f32) -> Result<Tensor> {
    x.expect_dtype(op.name(), DType::F32)?;
    let xc = x.materialize()?;
    let y = device::dispatch(op.name(), &[x])?.unary(op, &xc, alpha)?;
    if !x.requires_grad() {
        return Ok(y);
    }
    let saved_y = y.clone();
    Ok(autograd::record(op.name(), &[x], &[&xc, &saved_y], y, move |g, saved, _needs| {
        Ok(vec![Some(unary_backward(op, &saved[0], &saved[1], g, alpha)?)])
    }))
}

/// g * dy/dx for y = op(x), in one pass. x, y contiguous; g any layout.
fn unary_backward(op: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor, alpha: f32) -> Result<Tensor> {
    device::dispatch(op.name(), &[x, y, g])?.unary_backward(op, x, y, g, alpha)
}
