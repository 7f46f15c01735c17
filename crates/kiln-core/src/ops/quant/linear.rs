//! x · Wᵀ + b on quantized weights: validation and shapes, then one call on the inputs' device
//! (on the CPU: device/cpu/quant/layers.rs, with linear.rs for weight-only, w8a8.rs for int8
//! activations).

use super::{checked_weights, operands, refuse_gradients, Format};
use crate::device;
use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
use crate::layout::checked_numel;
use crate::tensor::Tensor;

/// x · Wᵀ + b with int8 weights. x [..., I] float32, q [O, I] int8, scales [O], bias [O] or
/// None -> [..., O]. Inference-only: errors if a gradient would be needed (see module comment).
pub fn linear_q8(x: &Tensor, q: &Tensor, scales: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    linear("linearQ8", x, q, scales, bias, Format::Int8, false)
}

/// As `linear_q8`, with the input quantized too: each row of x to int8 with scale max|row| / 127,
/// products summed exactly in i32 (w8a8.rs). Faster than float; the result carries the input's
/// rounding as well as the weights'.
pub fn linear_w8a8(x: &Tensor, q: &Tensor, scales: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    linear("linearW8A8", x, q, scales, bias, Format::Int8, true)
}

/// x · Wᵀ + b with int4 weights. x [..., I] float32, packed [O, ceil(I/2)] int8,
/// scales [O, ceil(I/block)], bias [O] or None -> [..., O]. Inference-only.
pub fn linear_q4(x: &Tensor, packed: &Tensor, scales: &Tensor, bias: Option<&Tensor>, block: usize) -> Result<Tensor> {
    linear("linearQ4", x, packed, scales, bias, Format::int4("linearQ4", block)?, false)
}

fn linear(op: &str, x: &Tensor, q: &Tensor, scales: &Tensor, bias: Option<&Tensor>, format: Format, int8_activations: bool) -> Result<Tensor> {
    if x.dtype() != DType::F32 || x.rank() == 0 {
        return Err(KilnError::new(op, format!("expected a float32 input [..., inFeatures], got {} {}", x.dtype(), fmt_shape(x.shape()))));
    }
    let in_features = x.shape()[x.rank() - 1];
    let weights = checked_weights(op, q, scales, format, in_features)
        .map_err(|e| KilnError::new(op, format!("{} (input {} {})", e.message, x.dtype(), fmt_shape(x.shape()))))?;
    let out_features = q.shape()[0];
    if let Some(b) = bias {
        if b.dtype() != DType::F32 || b.shape() != [out_features] {
            return Err(KilnError::new(op, format!("expected a float32 bias [{out_features}], got {} {}", b.dtype(), fmt_shape(b.shape()))));
        }
    }
    refuse_gradients(op, x, &[Some(scales), bias])?;
    let mut out_shape = x.shape()[..x.rank() - 1].to_vec();
    out_shape.push(out_features);
    checked_numel(op, &out_shape)?;
    device::dispatch(op, &operands(x, &weights, bias))?.quantized_linear(x, &weights, bias, int8_activations, op)
}
