//! x · Wᵀ + b on quantized weights: validation, shapes and the call into the CPU kernels
//! (device/cpu/quant/linear.rs for weight-only, w8a8.rs for int8 activations).

use crate::device::cpu::quant::{nibbles, packed::Int8Weights, rows::RowSource};
use super::{bias_values, checked_weights, refuse_gradients, Format};
use crate::dtype::DType;
use crate::error::{fmt_shape, KilnError, Result};
use crate::layout::checked_numel;
use crate::storage::{try_zeroed, Buffer};
use crate::tensor::Tensor;

/// x · Wᵀ + b with int8 weights. x [..., I] float32, q [O, I] int8, scales [O], bias [O] or
/// None -> [..., O]. Inference-only: errors if a gradient would be needed (see module comment).
pub fn linear_q8(x: &Tensor, q: &Tensor, scales: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    crate::device::cpu_only("linearQ8", &[Some(x), Some(q), Some(scales), bias])?;
    linear(x, q, scales, bias, Format::Int8, false)
}

/// As `linear_q8`, with the input quantized too: each row of x to int8 with scale max|row| / 127,
/// products summed exactly in i32 (w8a8.rs). Faster than float; the result carries the input's
/// rounding as well as the weights'.
pub fn linear_w8a8(x: &Tensor, q: &Tensor, scales: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    crate::device::cpu_only("linearW8A8", &[Some(x), Some(q), Some(scales), bias])?;
    linear(x, q, scales, bias, Format::Int8, true)
}

/// x · Wᵀ + b with int4 weights. x [..., I] float32, packed [O, ceil(I/2)] int8,
/// scales [O, ceil(I/block)], bias [O] or None -> [..., O]. Inference-only.
pub fn linear_q4(x: &Tensor, packed: &Tensor, scales: &Tensor, bias: Option<&Tensor>, block: usize) -> Result<Tensor> {
    crate::device::cpu_only("linearQ4", &[Some(x), Some(packed), Some(scales), bias])?;
    linear(x, packed, scales, bias, Format::int4("linearQ4", block)?, false)
}

fn linear(x: &Tensor, q: &Tensor, scales: &Tensor, bias: Option<&Tensor>, format: Format, int8_input: bool) -> Result<Tensor> {
    let op = match (format, int8_input) {
        (_, true) => "linearW8A8",
        (Format::Int8, false) => "linearQ8",
        _ => "linearQ4",
    };
    if x.dtype() != DType::F32 || x.rank() == 0 {
        return Err(KilnError::new(op, format!("expected a float32 input [..., inFeatures], got {} {}", x.dtype(), fmt_shape(x.shape()))));
    }
    let in_features = x.shape()[x.rank() - 1];
    let (q, scales) = checked_weights(op, q, scales, format, in_features)
        .map_err(|e| KilnError::new(op, format!("{} (input {} {})", e.message, x.dtype(), fmt_shape(x.shape()))))?;
    let out_features = q.shape()[0];
    if let Some(b) = bias {
        if b.dtype() != DType::F32 || b.shape() != [out_features] {
            return Err(KilnError::new(op, format!("expected a float32 bias [{out_features}], got {} {}", b.dtype(), fmt_shape(b.shape()))));
        }
    }
    refuse_gradients(op, x, &[Some(&scales), bias])?;
    let x = x.materialize()?;
    let rows = x.numel() / in_features.max(1);
    let mut out_shape = x.shape()[..x.rank() - 1].to_vec();
    out_shape.push(out_features);
    let mut out = try_zeroed::<f32>(op, checked_numel(op, &out_shape)?)?;
    let bias = bias_values(op, bias)?;
    // The int4 re-layout serves the few-row dots only: a model run only on large batches never
    // builds it.
    let int4_runs = match format {
        Format::Int4 { block } if rows <= crate::device::cpu::quant::linear::DOT_MAX_ROWS => nibbles::of(&q, out_features, in_features, block)?,
        _ => None,
    };
    let weights = RowSource {
        format,
        q: q.contiguous_slice::<i8>().unwrap(),
        scales: scales.contiguous_slice::<f32>().unwrap(),
        in_features,
        int4_runs: int4_runs.as_deref(),
    };
    if rows > 0 && out_features > 0 && int8_input {
        let packed = Int8Weights::of_linear(&q, out_features, in_features)?;
        crate::device::cpu::quant::w8a8::linear(x.contiguous_slice::<f32>().unwrap(), rows, in_features, weights.q, &packed, weights.scales, bias.as_deref(), &mut out);
    } else if rows > 0 && out_features > 0 {
        crate::device::cpu::quant::linear::forward(x.contiguous_slice::<f32>().unwrap(), rows, &weights, bias.as_deref(), &mut out, out_features);
    }
    Ok(Tensor::from_buffer(Buffer::F32(out), &out_shape))
}
