//! Layer normalization (Ba et al. 2016) over the axes from `axis` to the last: per row of those
//! axes, y = (x − mean)/√(var + eps)·weight + bias with the biased variance, as PyTorch's
//! nn.LayerNorm and ONNX's LayerNormalization. Composed from ops it is ten passes over the whole
//! tensor (ONNX exporters write it so: ReduceMean, Sub, Mul, ReduceMean, Add, Sqrt, Reciprocal,
//! Mul, Mul, Add); the CPU's kernel (device/cpu/layer_norm.rs) reads each row twice while it is
//! in cache and writes it once. The GPU runs `composed` on its own reductions and elementwise kernels.
//! The backward is composed from ops on the saved statistics: it runs on whatever device the
//! tensors live on, and only in training.

use crate::autograd;
use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
use crate::layout;
use crate::ops::{self, BinaryOp, ReduceOp, UnaryOp};
use crate::tensor::Tensor;

const OP: &str = "layerNorm";

/// Layer normalization. x: float32 [..., ...normalized] -> same shape, normalized over the axes
/// from `axis` (negative counts from the end) to the last. weight and bias: float32 with the
/// normalized shape (x's dims from `axis` on), or None (no scale / no shift). Gradients flow to
/// x, weight and bias.
pub fn layer_norm(x: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>, axis: isize, eps: f32) -> Result<Tensor> {
    if x.dtype() != DType::F32 || x.rank() == 0 {
        return Err(KilnError::new(OP, format!("expected a float32 tensor of rank >= 1, got {} {}", x.dtype(), fmt_shape(x.shape()))));
    }
    let axis = layout::normalize_axis(OP, axis, x.rank())?;
    let normalized = &x.shape()[axis..];
    if normalized.contains(&0) {
        return Err(KilnError::new(OP, format!("normalizes over no elements: dims {} of input {} from axis {axis}", fmt_shape(normalized), fmt_shape(x.shape()))));
    }
    for (what, t) in [("weight", weight), ("bias", bias)] {
        if let Some(t) = t {
            if t.dtype() != DType::F32 || t.shape() != normalized {
                return Err(KilnError::new(OP, format!(
                    "{what} must be float32 {} (input {}'s dims from axis {axis}), got {} {}",
                    fmt_shape(normalized), fmt_shape(x.shape()), t.dtype(), fmt_shape(t.shape())
                )));
            }
        }
    }
    if !(eps >= 0.0 && eps.is_finite()) {
        return Err(KilnError::new(OP, format!("eps must be a finite number >= 0, got {eps}")));
    }
    let inputs: Vec<&Tensor> = [Some(x), weight, bias].into_iter().flatten().collect();
    let (y, mean, inv_std) = crate::device::dispatch(OP, &inputs)?.layer_norm(x, weight, bias, axis, eps)?;
    let mut saved = vec![x, &mean, &inv_std];
    saved.extend(weight);
    let (has_weight, has_bias) = (weight.is_some(), bias.is_some());
    Ok(autograd::record(OP, &inputs, &saved, y, move |g, saved, needs| {
        let (x, mean, inv_std) = (&saved[0], &saved[1], &saved[2]);
        let mut grads = vec![if needs[0] { Some(input_grad(g, x, mean, inv_std, saved.get(3), axis)?) } else { None }];
        // Weight and bias are shared by every row: their gradients sum over the leading axes.
        let lead: Vec<isize> = (0..axis as isize).collect();
        let sum_rows = |t: Tensor| if lead.is_empty() { Ok(t) } else { ops::reduce(ReduceOp::Sum, &t, &lead, false, 0) };
        if has_weight {
            grads.push(if needs[1] { Some(sum_rows(ops::binary(BinaryOp::Mul, g, &normalize(x, mean, inv_std)?)?)?) } else { None });
        }
        if has_bias {
            grads.push(if needs[1 + has_weight as usize] { Some(sum_rows(g.clone())?) } else { None });
        }
        Ok(grads)
    }))
}

/// x̂ = (x − mean)·inv_std.
fn normalize(x: &Tensor, mean: &Tensor, inv_std: &Tensor) -> Result<Tensor> {
    ops::binary(BinaryOp::Mul, &ops::binary(BinaryOp::Sub, x, mean)?, inv_std)
}

/// dx = inv_std·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) over the normalized axes, with ĝ = g·weight.
fn input_grad(g: &Tensor, x: &Tensor, mean: &Tensor, inv_std: &Tensor, weight: Option<&Tensor>, axis: usize) -> Result<Tensor> {
    let axes: Vec<isize> = (axis as isize..x.rank() as isize).collect();
    let x_hat = normalize(x, mean, inv_std)?;
    let g_hat = match weight {
        Some(w) => ops::binary(BinaryOp::Mul, g, w)?,
        None => g.clone(),
    };
    let mean_g = ops::reduce(ReduceOp::Mean, &g_hat, &axes, true, 0)?;
    let mean_gx = ops::reduce(ReduceOp::Mean, &ops::binary(BinaryOp::Mul, &g_hat, &x_hat)?, &axes, true, 0)?;
    let centered = ops::binary(BinaryOp::Sub, &ops::binary(BinaryOp::Sub, &g_hat, &mean_g)?, &ops::binary(BinaryOp::Mul, &x_hat, &mean_gx)?)?;
    ops::binary(BinaryOp::Mul, &centered, inv_std)
}

/// The forward composed from reductions and elementwise ops, for devices without a fused kernel
/// (kiln-gpu's `Device::layer_norm`): (y, mean, 1/√(var + eps)), the statistics keeping x's rank.
/// Its inputs are detached: the op records the one gradient node. The mean is taken twice, the
/// second time of x minus the first: a float32 mean of a row at 1000 ± 0.01 is off by a percent
/// of the row's spread, the mean of its offsets from it is not (as the CPU kernel's shift).
pub fn composed(x: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>, axis: usize, eps: f32) -> Result<(Tensor, Tensor, Tensor)> {
    let x = x.detach();
    let axes: Vec<isize> = (axis as isize..x.rank() as isize).collect();
    let rough = ops::reduce(ReduceOp::Mean, &x, &axes, true, 0)?;
    let offsets = ops::binary(BinaryOp::Sub, &x, &rough)?;
    let correction = ops::reduce(ReduceOp::Mean, &offsets, &axes, true, 0)?;
    let var = ops::reduce(ReduceOp::Variance, &offsets, &axes, true, 0)?;
    let inv_std = ops::unary(UnaryOp::Rsqrt, &ops::binary(BinaryOp::Add, &var, &Tensor::scalar_f32(eps))?, 0.0)?;
    let mean = ops::binary(BinaryOp::Add, &rough, &correction)?;
    let mut y = normalize(&offsets, &correction, &inv_std)?;
    if let Some(w) = weight {
        y = ops::binary(BinaryOp::Mul, &y, &w.detach())?;
    }
    if let Some(b) = bias {
        y = ops::binary(BinaryOp::Add, &y, &b.detach())?;
    }
    Ok((y, mean, inv_std))
}
