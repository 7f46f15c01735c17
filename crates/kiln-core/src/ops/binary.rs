//! Elementwise binary ops with NumPy broadcasting: arithmetic (float32 -> float32), comparisons
//! (float32 -> bool masks) and `where`: validation, one dispatch and the autograd record. The
//! table of ops is params/binary.rs; the CPU kernels are device/cpu/binary.rs.

use crate::autograd;
use crate::device;
use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
use crate::layout;
use crate::tensor::Tensor;

pub use crate::params::binary::{BinaryKernel, BinaryOp, BinaryVisitor};

/// `op(a, b)` without autograd: the checks, then the inputs' device (device/cpu/binary.rs on
/// the CPU).
fn run(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let dev = device::dispatch(op.name(), &[a, b])?;
    expect_f32_pair(op.name(), a, b)?;
    if a.shape() != b.shape() {
        layout::broadcast_shapes(op.name(), a.shape(), b.shape())?;
    }
    dev.binary(op, a, b)
}

/// `op(a, b)` with broadcasting: shapes broadcast (NumPy rules) -> the broadcast shape.
pub fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if op.is_comparison() && (a.dtype() == DType::I32 || b.dtype() == DType::I32) {
        // Comparisons accept int32 (argmax against labels is the common case): both sides are
        // compared as float32, exact for integers up to 2^24.
        let promote = |t: &Tensor| if t.dtype() == DType::I32 { crate::ops::cast(t, DType::F32) } else { Ok(t.clone()) };
        return run(op, &promote(a)?, &promote(b)?);
    }
    let out = run(op, a, b)?;
    if op.is_comparison() || !(a.requires_grad() || b.requires_grad()) {
        return Ok(out);
    }
    Ok(autograd::record(op.name(), &[a, b], &[a, b], out, move |g, saved, _needs| binary_backward(op, g, &saved[0], &saved[1])))
}

fn scalar(v: f32) -> Tensor {
    Tensor::scalar_f32(v)
}

/// Gradients of the arithmetic ops, each summed back to its input's shape.
fn binary_backward(op: BinaryOp, g: &Tensor, a: &Tensor, b: &Tensor) -> Result<Vec<Option<Tensor>>> {
    use BinaryOp::*;
    let f = |op: BinaryOp, x: &Tensor, y: &Tensor| run(op, x, y);
    let (ga, gb) = match op {
        Add => (g.clone(), g.clone()),
        Sub => (g.clone(), f(Mul, g, &scalar(-1.0))?),
        Mul => (f(Mul, g, b)?, f(Mul, g, a)?),
        Div => {
            let ga = f(Div, g, b)?;
            // d(a/b)/db = -a/b² = -(a/b)/b
            let gb = f(Mul, &f(Div, &f(Mul, &ga, a)?, b)?, &scalar(-1.0))?;
            (ga, gb)
        }
        Pow => {
            let y = f(Pow, a, b)?;
            let ga = f(Mul, g, &f(Mul, b, &f(Pow, a, &f(Sub, b, &scalar(1.0))?)?)?)?;
            // d(a^b)/db = a^b ln a; taken as 0 where a^b = 0 (a = 0), as PyTorch does.
            let log_a = crate::ops::unary(crate::ops::UnaryOp::Log, a, 0.0)?;
            let raw = f(Mul, g, &f(Mul, &y, &log_a)?)?;
            let zero = f(Equal, &y, &scalar(0.0))?;
            (ga, where_(&zero, &scalar(0.0), &raw)?)
        }
        Maximum | Minimum => {
            // The gradient goes to the larger (smaller) input; ties split it evenly.
            let wins = f(if op == Maximum { Greater } else { Less }, a, b)?;
            let ties = f(Equal, a, b)?;
            let share_a = f(Add, &crate::ops::cast(&wins, DType::F32)?, &f(Mul, &crate::ops::cast(&ties, DType::F32)?, &scalar(0.5))?)?;
            let ga = f(Mul, g, &share_a)?;
            let gb = f(Sub, g, &ga)?;
            (ga, gb)
        }
        _ => unreachable!("comparisons have no gradient"),
    };
    Ok(vec![Some(autograd::sum_to_shape(&ga, a.shape())?), Some(autograd::sum_to_shape(&gb, b.shape())?)])
}

fn expect_f32_pair(op: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dtype() != DType::F32 || b.dtype() != DType::F32 {
        return Err(KilnError::new(
            op,
            format!(
                "expected float32 tensors, got {} {} and {} {}",
                a.dtype(), fmt_shape(a.shape()), b.dtype(), fmt_shape(b.shape())
            ),
        ));
    }
    Ok(())
}

/// `cond ? a : b` elementwise, all three broadcast together. cond: bool; a, b: float32.
pub fn where_(cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let out = where_forward(cond, a, b)?;
    let (a_shape, b_shape) = (a.shape().to_vec(), b.shape().to_vec());
    Ok(autograd::record("where", &[cond, a, b], &[cond], out, move |g, saved, _needs| {
        let (cond, zero) = (&saved[0], Tensor::scalar_f32(0.0));
        let ga = autograd::sum_to_shape(&where_forward(cond, g, &zero)?, &a_shape)?;
        let gb = autograd::sum_to_shape(&where_forward(cond, &zero, g)?, &b_shape)?;
        Ok(vec![None, Some(ga), Some(gb)])
    }))
}

fn where_forward(cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    const OP: &str = "where";
    if cond.dtype() != DType::Bool {
        return Err(KilnError::new(OP, format!("condition must be a bool tensor, got {} {}", cond.dtype(), fmt_shape(cond.shape()))));
    }
    expect_f32_pair(OP, a, b)?;
    layout::broadcast_shapes(OP, cond.shape(), &layout::broadcast_shapes(OP, a.shape(), b.shape())?)?;
    device::dispatch(OP, &[cond, a, b])?.where_(cond, a, b)
}
