//! The fully connected layer's product, y = x·Wᵀ + bias (PyTorch's F.linear): x [..., K],
//! W [N, K] (any strides: an imported MatMul's [K, N] weight is passed as its transposed view),
//! bias [N]. On the CPU the bias is the GEMM's starting value (device/cpu/linear.rs), so it costs
//! no pass of its own over the output; the GPU composes matmul and add (`composed`). This file validates, dispatches once and records autograd: the gradients
//! are matmul's and a sum over the rows.

use crate::autograd;
use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
use crate::ops::{self, BinaryOp, ReduceOp};
use crate::tensor::Tensor;

const OP: &str = "linear";

/// x [..., K] · Wᵀ + bias -> [..., N], W [N, K], bias [N] or None. Gradients flow to all three.
pub fn linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
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
    let inputs: Vec<&Tensor> = [Some(x), Some(w), bias].into_iter().flatten().collect();
    let y = crate::device::dispatch(OP, &inputs)?.linear(x, w, bias)?;
    let has_bias = bias.is_some();
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
        Ok(grads)
    }))
}

/// The forward composed from matmul and add, for devices without a fused kernel (kiln-gpu's
/// `Device::linear`). Its inputs are detached: the op records the one gradient node.
pub fn composed(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let y = ops::matmul(&x.detach(), &w.detach(), false, true)?;
    match bias {
        Some(b) => ops::binary(BinaryOp::Add, &y, &b.detach()),
        None => Ok(y),
    }
}
