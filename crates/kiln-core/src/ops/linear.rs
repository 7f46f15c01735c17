//! The fully connected layer's product, y = x·Wᵀ + bias (PyTorch's F.linear), plus an optional
//! residual: x [..., K], W [N, K] (any strides: an imported MatMul's [K, N] weight is passed as
//! its transposed view), bias [N], residual [..., N] (the output's shape: a Transformer's skip
//! connection, `h + attn(h)·Woᵀ + b`). On the CPU the bias (and the residual) are the GEMM's
//! starting value (device/cpu/linear.rs), so they cost no pass of their own over the output; the
//! GPU composes matmul and adds (`composed`). This file validates, dispatches once and records
//! autograd: the gradients are matmul's, a sum over the rows, and the residual's is the output's.

use crate::autograd;
use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
use crate::ops::{self, Activation, BinaryOp, ReduceOp};
use crate::tensor::Tensor;

const OP: &str = "linear";

/// x [..., K] · Wᵀ + bias + residual -> [..., N], W [N, K], bias [N] or None, residual [..., N]
/// or None. Gradients flow to all four.
pub fn linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, residual: Option<&Tensor>) -> Result<Tensor> {
    check(x, w, bias, residual)?;
    let inputs: Vec<&Tensor> = [Some(x), Some(w), bias, residual].into_iter().flatten().collect();
    let y = crate::device::dispatch(OP, &inputs)?.linear(x, w, bias, residual, None)?;
    let (has_bias, has_residual) = (bias.is_some(), residual.is_some());
    Ok(autograd::record(OP, &inputs, &[x, w], y, move |g, saved, needs| {
        let (x, w) = (&saved[0], &saved[1]);
        let n = w.shape()[0] as isize;
        let rows = |t: &Tensor, cols: isize| t.reshape(&[-1, cols]);
        let dx = if needs[0] { Some(ops::matmul(g, w, false, false)?) } else { None };
        let dw = if needs[1] { Some(ops::matmul(&rows(g, n)?, &rows(x, w.shape()[1] as isize)?, true, false)?) } else { None };
        let mut grads = vec![dx, dw];
        if has_bias {
            grads.push(if needs[2] { Some(ops::reduce(ReduceOp::Sum, &rows(g, n)?, &[0], false, 0)?) } else { None });
        }
        if has_residual {
            grads.push(if needs[grads.len()] { Some(g.clone()) } else { None });
        }
        Ok(grads)
    }))
}

/// activation(linear(x, W, bias, residual)): an imported Transformer's Linear + GELU. With no
/// gradient to record (under `noGrad`, or no input requiring one) the device applies the
/// activation as it writes the output (the CPU: each block of the product right after it is
/// computed, no pass or allocation of its own); otherwise `linear` then `ops::unary`, whose
/// gradients are theirs (GELU's needs its input, which the fused kernel does not keep).
pub fn linear_activated(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, residual: Option<&Tensor>, activation: Option<Activation>) -> Result<Tensor> {
    let inputs: Vec<&Tensor> = [Some(x), Some(w), bias, residual].into_iter().flatten().collect();
    let Some(act) = activation else { return linear(x, w, bias, residual) };
    if autograd::is_enabled() && inputs.iter().any(|t| t.requires_grad()) {
        return ops::unary(act.op, &linear(x, w, bias, residual)?, act.alpha);
    }
    check(x, w, bias, residual)?;
    crate::device::dispatch(OP, &inputs)?.linear(x, w, bias, residual, activation)
}

/// The arguments' dtypes and shapes, or an error naming them.
fn check(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, residual: Option<&Tensor>) -> Result<()> {
    let shapes = || format!("x {} {}, weight {} {}", x.dtype(), fmt_shape(x.shape()), w.dtype(), fmt_shape(w.shape()));
    if x.dtype() != DType::F32 || w.dtype() != DType::F32 || x.rank() == 0 || w.rank() != 2 {
        return Err(KilnError::new(OP, format!("expected float32 x [..., inFeatures] and weight [outFeatures, inFeatures], got {}", shapes())));
    }
    let (n, k) = (w.shape()[0], w.shape()[1]);
    if x.shape()[x.rank() - 1] != k {
        return Err(KilnError::new(OP, format!("x's last dim must equal the weight's inFeatures {k}, got {}", shapes())));
    }
    if let Some(b) = bias {
        if b.dtype() != DType::F32 || b.shape() != [n] {
            return Err(KilnError::new(OP, format!("bias must be float32 [{n}] (the weight's outFeatures), got {} {}", b.dtype(), fmt_shape(b.shape()))));
        }
    }
    if let Some(r) = residual {
        let mut out_shape = x.shape()[..x.rank() - 1].to_vec();
        out_shape.push(n);
        if r.dtype() != DType::F32 || r.shape() != out_shape.as_slice() {
            return Err(KilnError::new(OP, format!("residual must be float32 {} (the output's shape), got {} {}", fmt_shape(&out_shape), r.dtype(), fmt_shape(r.shape()))));
        }
    }
    Ok(())
}

/// The forward composed from matmul, adds and the activation, for devices without a fused kernel
/// (kiln-gpu's `Device::linear`). Its inputs are detached: the op records the one gradient node.
pub fn composed(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, residual: Option<&Tensor>, activation: Option<Activation>) -> Result<Tensor> {
    let mut y = ops::matmul(&x.detach(), &w.detach(), false, true)?;
    for t in [bias, residual].into_iter().flatten() {
        y = ops::binary(BinaryOp::Add, &y, &t.detach())?;
    }
    match activation {
        Some(act) => ops::unary(act.op, &y, act.alpha),
        None => Ok(y),
    }
}
